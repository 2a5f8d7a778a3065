"""Builders for test data. They write as the platform operator (RLS bypass) so tests can set up
several clinics at once; the code under test still runs with its own tenant setting."""

import datetime
import io

import numpy as np
from django.contrib.auth import get_user_model
from PIL import Image

from clinic.models import Clinic, Membership
from clinic.tenancy import operator_context
from patients import services
from patients.models import Patient, Visit


def make_clinic(slug: str, name: str | None = None) -> Clinic:
    with operator_context():
        return Clinic.objects.create(slug=slug, name=name or slug.title())


def make_user(username: str, **fields):
    fields.setdefault("email", f"{username}@example.org")
    return get_user_model().objects.create_user(username=username, password="pw-" + username, **fields)


def add_member(user, clinic: Clinic, role: str) -> Membership:
    with operator_context():
        return Membership.objects.create(user=user, clinic=clinic, role=role)


def make_patient(clinic: Clinic, external_id: str, **fields) -> Patient:
    fields.setdefault("first_name", "Test")
    fields.setdefault("last_name", external_id)
    with operator_context():
        return services.patient_create(clinic=clinic, external_id=external_id, **fields)


def make_visit(patient: Patient, days_ago: int = 0, **fields) -> Visit:
    with operator_context():
        return services.visit_create(patient=patient, visit_date=datetime.date.today()
                                     - datetime.timedelta(days=days_ago), **fields)


def png_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48, seed: int = 0, exif=None) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90, **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def make_photo(visit: Visit, view: str = "crown", data: bytes | None = None, site_label: str = "", seed: int = 0):
    with operator_context():
        return services.photo_upload(visit=visit, data=data or png_bytes(seed=seed), view=view,
                                     uploaded_by=None, site_label=site_label)
