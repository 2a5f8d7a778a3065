import re

from django.contrib.auth import get_user_model
from django.core import mail
from django.test import override_settings
from django.urls import reverse

from clinic.models import Membership, Role
from clinic.tenancy import operator_context
from tests import factories

ARGON2 = ["django.contrib.auth.hashers.Argon2PasswordHasher"]


@override_settings(PASSWORD_HASHERS=ARGON2)
def test_passwords_are_hashed_with_argon2(db):
    user = factories.make_user("hashcheck")
    assert user.password.startswith("argon2")


def test_login_lands_on_the_users_clinic(world, client):
    response = client.post(reverse("login"), {"username": "a-clinician", "password": "pw-a-clinician"})
    assert response.status_code == 302
    assert client.get(response["Location"])["Location"] == reverse("dashboard", args=["clinic-a"])


def test_a_wrong_password_is_refused(world, client):
    response = client.post(reverse("login"), {"username": "a-clinician", "password": "nope"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_logout_needs_a_post_and_ends_the_session(world, login):
    client = login(world.users[Role.CLINICIAN])
    client.post(reverse("logout"))
    assert client.get(reverse("dashboard", args=["clinic-a"])).status_code == 302


def test_password_reset_sends_a_working_link(world, client):
    client.post(reverse("password_reset"), {"email": "a-staff@example.org"})
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    response = client.post(form_page.redirect_chain[-1][0],
                           {"new_password1": "a long new passphrase 42", "new_password2": "a long new passphrase 42"})
    assert response.status_code == 302
    assert client.login(username="a-staff", password="a long new passphrase 42")


def test_a_clinic_admin_adds_a_new_member_who_gets_a_set_password_email(
        world, login, django_capture_on_commit_callbacks):
    client = login(world.users[Role.ADMIN])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("members", args=["clinic-a"]),
                               {"email": "New.Derm@Example.org", "role": Role.CLINICIAN, "first_name": "Nia"})
    assert response.status_code == 302
    user = get_user_model().objects.get(email="new.derm@example.org")
    assert not user.has_usable_password()
    with operator_context():
        assert Membership.objects.get(user=user).role == Role.CLINICIAN
    assert len(mail.outbox) == 1 and "/accounts/reset/" in mail.outbox[0].body


def test_adding_an_existing_member_changes_their_role(world, login):
    client = login(world.users[Role.ADMIN])
    client.post(reverse("members", args=["clinic-a"]), {"email": "a-staff@example.org", "role": Role.CLINICIAN})
    with operator_context():
        assert Membership.objects.get(user=world.users[Role.STAFF]).role == Role.CLINICIAN


def test_clinic_settings_refuse_inverted_thresholds(world, login):
    client = login(world.users[Role.ADMIN])
    data = {"name": "Clinic A", "grading_scale": "norwood_ludwig", "units": "metric", "vellus_max_um": 70,
            "terminal_min_um": 60, "report_header": ""}
    response = client.post(reverse("clinic_settings", args=["clinic-a"]), data)
    assert response.status_code == 200
    assert "vellus limit" in response.content.decode()
    data["vellus_max_um"] = 35
    assert client.post(reverse("clinic_settings", args=["clinic-a"]), data).status_code == 302
    world.clinic_a.refresh_from_db()
    assert world.clinic_a.vellus_max_um == 35
