"""Uploads: type decided by content, bombs and broken files refused, EXIF (GPS!) removed."""

import io
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from clinic.models import Role
from clinic.tenancy import operator_context
from patients.images import UploadRejected, clean_upload
from patients.models import Photo
from tests import factories

GPS_IFD = 0x8825
EXIF_IFD = 0x8769


def _jpeg_with_camera_exif(width=80, height=40, orientation=6) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS R6"
    exif[0x0112] = orientation
    exif.get_ifd(EXIF_IFD)[0x9003] = "2026:03:14 09:26:53"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)})
    return factories.jpeg_bytes(width, height, exif=exif.tobytes())


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny file whose header claims a huge image: the shape of a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\x00\x00\x00\x00IEND\xaeB`\x82")


def test_it_decides_the_type_by_content_not_the_name(world):
    data = factories.png_bytes()
    photo = factories.make_photo(world.visit_a, data=data)
    assert photo.content_type == "image/png"
    assert photo.file.name.endswith(".png")


def test_it_accepts_a_png_renamed_jpg_through_the_form(world, login):
    client = login(world.users[Role.STAFF])
    upload = SimpleUploadedFile("scalp.jpg", factories.png_bytes(), content_type="image/jpeg")
    response = client.post(reverse("photo_upload", args=[world.clinic_a.slug, world.visit_a.id]),
                           {"view": "crown", "file": upload})
    assert response.status_code == 302
    with operator_context():
        assert Photo.objects.get(visit=world.visit_a).content_type == "image/png"


def test_it_refuses_a_file_that_is_not_an_image(world, login):
    client = login(world.users[Role.STAFF])
    upload = SimpleUploadedFile("scalp.jpg", b"%PDF-1.4 not a photo", content_type="image/jpeg")
    response = client.post(reverse("photo_upload", args=[world.clinic_a.slug, world.visit_a.id]),
                           {"view": "crown", "file": upload})
    assert response.status_code == 400
    assert "not a JPEG or PNG" in response.content.decode()
    with operator_context():
        assert not Photo.objects.exists()


def test_it_refuses_other_image_formats():
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, format="GIF")
    with pytest.raises(UploadRejected, match="Only JPEG and PNG"):
        clean_upload(out.getvalue())


def test_it_refuses_a_truncated_jpeg():
    data = factories.jpeg_bytes(400, 300)
    with pytest.raises(UploadRejected, match="damaged or incomplete"):
        clean_upload(data[: len(data) // 2])


def test_it_refuses_a_100_megapixel_header_before_decoding():
    with pytest.raises(UploadRejected, match="100 megapixels"):
        clean_upload(_png_header_only(10_000, 10_000))


def test_it_refuses_files_over_the_size_limit(settings):
    settings.MAX_UPLOAD_BYTES = 1000
    with pytest.raises(UploadRejected, match="at most"):
        clean_upload(factories.png_bytes(200, 200))


def test_it_refuses_an_empty_file():
    with pytest.raises(UploadRejected, match="empty"):
        clean_upload(b"")


def test_it_removes_exif_and_gps_but_keeps_capture_facts(world):
    photo = factories.make_photo(world.visit_a, data=_jpeg_with_camera_exif())
    with photo.file.open("rb") as stored:
        raw = stored.read()
    image = Image.open(io.BytesIO(raw))
    assert len(image.getexif()) == 0
    assert b"Exif" not in raw and b"Canon" not in raw
    # Orientation 6 (rotated 90°) was applied to the pixels before the tag was dropped.
    assert (photo.width, photo.height) == (40, 80) == image.size
    assert photo.capture_device == "Canon EOS R6"
    assert photo.captured_at.strftime("%Y-%m-%d %H:%M:%S") == "2026-03-14 09:26:53"


def test_it_stores_under_a_server_made_path_per_clinic(world):
    photo = factories.make_photo(world.visit_a)
    assert photo.file.name == f"clinics/{world.clinic_a.id}/photos/{photo.id}.png"


def test_it_reports_the_same_image_twice_in_a_visit_and_stores_it_once(world, login):
    data = factories.png_bytes(seed=7)
    factories.make_photo(world.visit_a, data=data)
    client = login(world.users[Role.STAFF])
    upload = SimpleUploadedFile("again.png", data)
    response = client.post(reverse("photo_upload", args=[world.clinic_a.slug, world.visit_a.id]),
                           {"view": "hairline", "file": upload})
    assert response.status_code == 400
    assert "already in this visit" in response.content.decode()
    with operator_context():
        assert Photo.objects.filter(visit=world.visit_a).count() == 1


def test_the_same_image_may_appear_in_another_visit(world):
    data = factories.png_bytes(seed=8)
    factories.make_photo(world.visit_a, data=data)
    later = factories.make_visit(world.patient_a, days_ago=-30)
    assert factories.make_photo(later, data=data).visit_id == later.id


def test_trichoscopy_needs_its_site(world):
    with pytest.raises(UploadRejected, match="scalp site"):
        factories.make_photo(world.visit_a, view="trichoscopy")


def test_the_photo_is_served_only_through_the_authorising_view(world, login):
    photo = factories.make_photo(world.visit_a)
    response = login(world.users[Role.CLINICIAN]).get(reverse("photo_file", args=[world.clinic_a.slug, photo.id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
