import pytest
from django.urls import reverse

from clinic.models import Role
from tests import factories


def _dashboard(client, world, q=""):
    return client.get(reverse("dashboard", args=[world.clinic_a.slug]), {"q": q} if q else {})


def test_it_searches_patients_by_name_and_record_number(world, login):
    factories.make_patient(world.clinic_a, "A-777", first_name="Mira", last_name="Okafor")
    client = login(world.users[Role.STAFF])
    assert "Okafor" in _dashboard(client, world, "okaf").content.decode()
    assert "Okafor" in _dashboard(client, world, "A-777").content.decode()
    assert "Okafor" not in _dashboard(client, world, "zzz").content.decode()


def test_it_never_lists_another_clinics_patients(world, login):
    content = _dashboard(login(world.users[Role.CLINICIAN]), world).content.decode()
    assert "A-001" in content and "B-001" not in content


@pytest.mark.parametrize("extra_patients", [1, 20])
def test_the_patient_list_has_a_constant_query_count(world, login, django_assert_num_queries, extra_patients):
    for i in range(extra_patients):
        patient = factories.make_patient(world.clinic_a, f"Q-{i:03}")
        factories.make_visit(patient)
    client = login(world.users[Role.CLINICIAN])
    # User, savepoints and tenant settings, memberships (with the switcher), the list itself (the
    # session comes from the cache): the same number for 2 patients or 21.
    with django_assert_num_queries(7):
        response = _dashboard(client, world)
    assert response.status_code == 200
