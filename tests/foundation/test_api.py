import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from clinic.models import Role
from clinic.tenancy import operator_context
from patients.models import Photo
from tests import factories


@pytest.fixture
def api(world, client):
    client.force_login(world.users[Role.STAFF])
    return client


def test_it_lists_only_the_clinics_patients(world, api):
    response = api.get(reverse("api_patients", args=["clinic-a"]))
    assert response.status_code == 200
    assert [p["external_id"] for p in response.json()["results"]] == ["A-001"]


def test_it_creates_a_patient_and_refuses_a_duplicate_record_number(world, api):
    url = reverse("api_patients", args=["clinic-a"])
    body = {"external_id": "A-900", "first_name": "Lee", "last_name": "Chan", "sex_at_birth": "female"}
    assert api.post(url, body).status_code == 201
    duplicate = api.post(url, body)
    assert duplicate.status_code == 400
    assert "external_id" in duplicate.json()


def test_it_uploads_a_photo_and_reports_bad_and_duplicate_files(world, api):
    url = reverse("api_photos", args=["clinic-a", world.visit_a.id])
    data = factories.png_bytes(seed=3)
    created = api.post(url, {"view": "crown", "file": SimpleUploadedFile("a.png", data)})
    assert created.status_code == 201
    assert created.json()["content_type"] == "image/png"
    again = api.post(url, {"view": "crown", "file": SimpleUploadedFile("b.png", data)})
    assert again.status_code == 409
    assert again.json()["existing_photo"] == created.json()["id"]
    broken = api.post(url, {"view": "crown", "file": SimpleUploadedFile("c.jpg", b"garbage")})
    assert broken.status_code == 400
    assert "not a JPEG or PNG" in broken.json()["file"][0]
    with operator_context():
        assert Photo.objects.filter(visit=world.visit_a).count() == 1


def test_it_hides_other_clinics_records(world, api):
    assert api.get(reverse("api_patient", args=["clinic-a", world.patient_b.id])).status_code == 404
    assert api.get(reverse("api_patients", args=["clinic-b"])).status_code == 404
    assert api.post(reverse("api_photos", args=["clinic-a", world.visit_b.id]),
                    {"view": "crown", "file": SimpleUploadedFile("a.png", factories.png_bytes())}).status_code == 404


def test_it_refuses_anonymous_callers_and_patients(world, client):
    url = reverse("api_patients", args=["clinic-a"])
    assert client.get(url).status_code in (401, 403)
    client.force_login(world.users[Role.PATIENT])
    assert client.get(url).status_code == 403


def test_it_accepts_http_basic_auth(world, client):
    import base64

    token = base64.b64encode(b"a-clinician:pw-a-clinician").decode()
    response = client.get(reverse("api_patients", args=["clinic-a"]), HTTP_AUTHORIZATION=f"Basic {token}")
    assert response.status_code == 200


def test_it_creates_visits_for_a_patient(world, api):
    url = reverse("api_visits", args=["clinic-a", world.patient_a.id])
    response = api.post(url, {"date": "2026-01-15", "kind": "home"})
    assert response.status_code == 201
    assert response.json()["patient"] == str(world.patient_a.id)
    assert len(api.get(url).json()["results"]) == 2
