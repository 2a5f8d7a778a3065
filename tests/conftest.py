"""The shared test world: clinic A with one member per role and a patient who owns a record,
clinic B with its own clinician and patient, and an outsider who belongs to no clinic."""

import os
from types import SimpleNamespace

import pytest
from django.db import connection

from clinic.models import Role
from tests import factories
from tests.browser import chromium, page  # noqa: F401  (shared browser fixtures)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Argon2 is deliberately slow; tests create many users and never attack their hashes.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path / "media"}}}


@pytest.fixture(autouse=True)
def _no_stray_embedded_analysis():
    # A committed upload starts the in-process analysis worker (embedded broker); stop it and drop
    # its queue after each test so no thread outlives the test database it was working on.
    yield
    from analysis.broker import reset_embedded

    reset_embedded()


@pytest.fixture(scope="session", autouse=True)
def _postgres_when_required(django_db_setup, django_db_blocker):
    # scripts/test sets this: a run that silently fell back to SQLite would skip every RLS guarantee.
    if os.environ.get("TRICHOTRACK_REQUIRE_POSTGRES"):
        assert connection.vendor == "postgresql", "the test command must run against PostgreSQL"


@pytest.fixture
def world(db):
    clinic_a = factories.make_clinic("clinic-a", "Clinic A")
    clinic_b = factories.make_clinic("clinic-b", "Clinic B")
    users = {role: factories.make_user(f"a-{role}") for role in Role.values}
    for role, user in users.items():
        factories.add_member(user, clinic_a, role)
    other_patient_user = factories.make_user("a-patient-2")
    factories.add_member(other_patient_user, clinic_a, Role.PATIENT)
    b_clinician = factories.make_user("b-clinician")
    factories.add_member(b_clinician, clinic_b, Role.CLINICIAN)
    outsider = factories.make_user("outsider")
    patient_a = factories.make_patient(clinic_a, "A-001", portal_user=users[Role.PATIENT])
    patient_b = factories.make_patient(clinic_b, "B-001")
    visit_a = factories.make_visit(patient_a)
    visit_b = factories.make_visit(patient_b)
    return SimpleNamespace(
        clinic_a=clinic_a, clinic_b=clinic_b, users=users, other_patient_user=other_patient_user,
        b_clinician=b_clinician, outsider=outsider, patient_a=patient_a, patient_b=patient_b,
        visit_a=visit_a, visit_b=visit_b,
    )


@pytest.fixture
def login(client):
    def as_user(user):
        client.force_login(user)
        return client

    return as_user
