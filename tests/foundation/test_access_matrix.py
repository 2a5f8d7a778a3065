"""Every URL that names an object, tried by every kind of visitor.

Expected answers: the care team of clinic A gets the page; a patient of A gets their own
photos but not staff pages (403); a patient of A who does not own the record, a member of
clinic B and an outsider get 404 (the same as a missing record); anonymous visitors are
sent to the login page.
"""

import uuid

import pytest
from django.urls import reverse

from clinic.models import Role
from tests import factories

CARE_TEAM = [Role.ADMIN, Role.CLINICIAN, Role.STAFF]


def _urls(world, photo):
    slug = world.clinic_a.slug
    return {
        "patient_detail": reverse("patient_detail", args=[slug, world.patient_a.id]),
        "visit_create": reverse("visit_create", args=[slug, world.patient_a.id]),
        "visit_detail": reverse("visit_detail", args=[slug, world.visit_a.id]),
        "photo_upload": reverse("photo_upload", args=[slug, world.visit_a.id]),
        "photo_file": reverse("photo_file", args=[slug, photo.id]),
    }


# What the patient who owns the record gets: their photo, but no staff pages.
OWNER_EXPECTED = {"patient_detail": 403, "visit_create": 403, "visit_detail": 403, "photo_upload": 403,
                  "photo_file": 200}


@pytest.fixture
def photo(world):
    return factories.make_photo(world.visit_a)


@pytest.mark.parametrize("role", CARE_TEAM)
@pytest.mark.parametrize("name", list(OWNER_EXPECTED))
def test_it_serves_the_care_team(world, photo, login, role, name):
    response = login(world.users[role]).get(_urls(world, photo)[name])
    assert response.status_code == 200


@pytest.mark.parametrize("name", list(OWNER_EXPECTED))
def test_it_gives_the_owning_patient_only_their_photos(world, photo, login, name):
    response = login(world.users[Role.PATIENT]).get(_urls(world, photo)[name])
    assert response.status_code == OWNER_EXPECTED[name]


@pytest.mark.parametrize("visitor", ["other_patient_user", "b_clinician", "outsider"])
@pytest.mark.parametrize("name", list(OWNER_EXPECTED))
def test_it_hides_records_from_everyone_else(world, photo, login, visitor, name):
    response = login(getattr(world, visitor)).get(_urls(world, photo)[name])
    assert response.status_code == 404


@pytest.mark.parametrize("name", list(OWNER_EXPECTED))
def test_it_sends_anonymous_visitors_to_login(world, photo, client, name):
    url = _urls(world, photo)[name]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_answers_missing_and_foreign_records_alike(world, login):
    client = login(world.users[Role.CLINICIAN])
    slug = world.clinic_a.slug
    missing = client.get(reverse("patient_detail", args=[slug, uuid.uuid4()]))
    foreign = client.get(reverse("patient_detail", args=[slug, world.patient_b.id]))
    assert missing.status_code == foreign.status_code == 404
    assert missing.content == foreign.content


def test_it_does_not_reveal_whether_another_clinic_exists(world, login):
    client = login(world.users[Role.CLINICIAN])
    assert client.get(reverse("dashboard", args=["clinic-b"])).status_code == 404
    assert client.get(reverse("dashboard", args=["no-such-clinic"])).status_code == 404


@pytest.mark.parametrize("role,expected", [(Role.ADMIN, 200), (Role.CLINICIAN, 403), (Role.STAFF, 403),
                                           (Role.PATIENT, 403)])
@pytest.mark.parametrize("page", ["members", "clinic_settings"])
def test_it_keeps_clinic_administration_to_admins(world, login, role, expected, page):
    response = login(world.users[role]).get(reverse(page, args=[world.clinic_a.slug]))
    assert response.status_code == expected


def test_it_sends_patients_from_the_dashboard_to_their_portal(world, login):
    response = login(world.users[Role.PATIENT]).get(reverse("dashboard", args=[world.clinic_a.slug]))
    assert response.status_code == 302
    assert response["Location"] == reverse("portal", args=[world.clinic_a.slug])


def test_it_lets_a_user_switch_between_their_clinics(world, login):
    user = world.users[Role.CLINICIAN]
    factories.add_member(user, world.clinic_b, Role.STAFF)
    client = login(user)
    home = client.get(reverse("home"))
    assert home.status_code == 200
    assert b"Clinic A" in home.content and b"Clinic B" in home.content
    in_b = client.get(reverse("dashboard", args=["clinic-b"]))
    assert in_b.status_code == 200
    assert b"B-001" in in_b.content and b"A-001" not in in_b.content
