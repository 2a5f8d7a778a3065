"""Small JPEG copies of stored photos for timelines and reports, made once and kept beside the
photo in private storage (never public; served only through the photo's access checks)."""

import io

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

TIMELINE_PX = 360
REPORT_PX = 900  # about 200 dpi across a report tile of 57 mm


def thumbnail(photo, px: int) -> str:
    """The storage name of `photo` scaled to fit px × px, creating it on first use."""
    return copy_of(photo.file, f"clinics/{photo.clinic_id}/thumbs/{photo.id}-{px}.jpg", px)


def copy_of(field, name: str, px: int) -> str:
    """`field` (a stored JPEG or PNG) as a JPEG that fits px × px, stored once under `name`."""
    if default_storage.exists(name):
        return name
    with field.open("rb") as source:
        image = Image.open(source)
        image.draft("RGB", (px, px))  # JPEG: decode at a reduced scale, several times faster
        image = image.convert("RGB")
        image.thumbnail((px, px))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
    return default_storage.save(name, ContentFile(out.getvalue()))
