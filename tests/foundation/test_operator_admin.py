from django.contrib.auth import get_user_model

from clinic.models import Role


def test_the_operator_sees_every_clinics_records_in_the_admin(world, client):
    operator = get_user_model().objects.create_superuser("op", "op@example.org", "pw")
    client.force_login(operator)
    page = client.get("/admin/patients/patient/").content.decode()
    assert "A-001" in page and "B-001" in page


def test_clinic_members_cannot_use_the_admin(world, login):
    response = login(world.users[Role.ADMIN]).get("/admin/patients/patient/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_audit_trail_is_read_only_in_the_admin(world, client):
    operator = get_user_model().objects.create_superuser("op", "op@example.org", "pw")
    client.force_login(operator)
    assert client.get("/admin/patients/auditevent/add/").status_code == 403
