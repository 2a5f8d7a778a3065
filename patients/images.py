"""Checks and cleans an uploaded scalp photo before anything is stored.

The type is decided by decoding the content, never by the file name; EXIF is dropped
(GPS must never be stored) after the capture time and device are read into fields.
"""

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
EXIF_IFD = 0x8769
EXIF_DATETIME_ORIGINAL = 0x9003
EXIF_DATETIME = 0x0132
EXIF_MAKE = 0x010F
EXIF_MODEL = 0x0110


class UploadRejected(ValueError):
    """The file cannot be accepted; the message is shown to the person who uploaded it."""


@dataclass(frozen=True)
class CleanImage:
    content: bytes
    content_type: str
    width: int
    height: int
    sha256: str
    captured_at: datetime | None
    capture_device: str


def clean_upload(data: bytes) -> CleanImage:
    _check_size(len(data))
    image = _open(data)
    _check_pixels(image.width, image.height)
    exif = image.getexif()
    captured_at, device = _capture_facts(exif)
    pixels = _decode(image)
    content = _encode_without_metadata(pixels, image.format)
    return CleanImage(
        content=content,
        content_type=ACCEPTED_FORMATS[image.format],
        width=pixels.width,
        height=pixels.height,
        # Hash of the decoded pixels: the same photo sent twice is recognised even if re-saved.
        sha256=hashlib.sha256(pixels.tobytes()).hexdigest(),
        captured_at=captured_at,
        capture_device=device,
    )


def _check_size(size: int) -> None:
    limit = settings.MAX_UPLOAD_BYTES
    if size == 0:
        raise UploadRejected("The file is empty.")
    if size > limit:
        raise UploadRejected(f"The file is {size / 2**20:.1f} MB; photos may be at most {limit / 2**20:.0f} MB.")


def _open(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UploadRejected("This file is not a JPEG or PNG photo.") from None
    except Image.DecompressionBombError:
        raise UploadRejected("The photo has too many pixels to be processed safely.") from None
    if image.format not in ACCEPTED_FORMATS:
        raise UploadRejected(f"Only JPEG and PNG photos are accepted; this file is {image.format}.")
    return image


def _check_pixels(width: int, height: int) -> None:
    # Read from the header before decoding: a small file may claim a huge image (decompression bomb).
    limit = settings.MAX_UPLOAD_PIXELS
    if width * height > limit:
        raise UploadRejected(
            f"The photo is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {limit / 1e6:.0f} megapixels."
        )


def _decode(image: Image.Image) -> Image.Image:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise UploadRejected(f"The photo is damaged or incomplete and cannot be read ({error}).") from None
    except Image.DecompressionBombError:
        raise UploadRejected("The photo has too many pixels to be processed safely.") from None
    upright = ImageOps.exif_transpose(image)
    return upright.convert("RGB")


def _capture_facts(exif: Image.Exif) -> tuple[datetime | None, str]:
    details = exif.get_ifd(EXIF_IFD)
    raw_time = details.get(EXIF_DATETIME_ORIGINAL) or exif.get(EXIF_DATETIME)
    device = " ".join(str(exif.get(tag, "")).strip("\x00 ") for tag in (EXIF_MAKE, EXIF_MODEL)).strip()
    return _parse_exif_time(raw_time), device[:120]


def _parse_exif_time(raw) -> datetime | None:
    if not raw:
        return None
    try:
        naive = datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # cameras write odd dates; a missing capture time is not a reason to refuse
    return timezone.make_aware(naive, timezone.get_default_timezone())


def _encode_without_metadata(pixels: Image.Image, source_format: str) -> bytes:
    out = io.BytesIO()
    if source_format == "PNG":
        pixels.save(out, format="PNG", optimize=False)
    else:
        # 4:4:4 and high quality: re-encoding must not blur hairs a few pixels wide.
        pixels.save(out, format="JPEG", quality=95, subsampling=0)
    return out.getvalue()
