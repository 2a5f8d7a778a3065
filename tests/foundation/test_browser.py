"""The foundation's flow in a real browser: log in, find a patient, upload a photo, see it."""

import pytest
from django.core.management import call_command

from tests import factories
from tests.browser import log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def staff_world(transactional_db):
    clinic = factories.make_clinic("clinic-a", "Clinic A")
    staff = factories.make_user("staff-user", first_name="Sam")
    factories.add_member(staff, clinic, "staff")
    patient = factories.make_patient(clinic, "A-042", first_name="Ines", last_name="Moreau")
    factories.make_visit(patient)
    return clinic


def test_staff_log_in_find_a_patient_and_upload_a_photo(staff_world, page, tmp_path):
    log_in(page, "staff-user", "pw-staff-user")
    assert page.url.endswith("/c/clinic-a/")
    page.fill("input[name=q]", "Moreau")
    page.click("form.search button")
    page.click("text=Moreau, Ines")
    page.wait_for_url("**/patients/*/")
    page.click("a[href^='/c/clinic-a/visits/'][href$='/']")
    page.wait_for_url("**/c/clinic-a/visits/*/")
    page.goto(page.url.split("?")[0] + "upload/")
    photo = tmp_path / "crown.jpg"
    photo.write_bytes(factories.jpeg_bytes(320, 240, seed=5))
    page.select_option("select[name=view]", "crown")
    page.set_input_files("input[name=file]", str(photo))
    page.click("form button.primary")
    assert "Crown photo stored" in page.inner_text(".messages")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"definitely not a photo")
    page.set_input_files("input[name=file]", str(broken))
    page.click("form button.primary")
    assert "not a JPEG or PNG photo" in page.inner_text(".field.has-error")


def test_the_demo_logins_work(transactional_db, page):
    # The logins are the point here; waiting for the demo's twelve analyses is tests/workers' job.
    call_command("seed_demo", "--no-wait", stdout=open("/dev/null", "w"))
    log_in(page, "clinician@demo.clinic", "demo-trichotrack")
    assert "/c/demo/" in page.url
    assert "Jones, Pat" in page.inner_text("table")
    page.click("text=Log out")
    log_in(page, "patient@demo.clinic", "demo-trichotrack")
    assert page.url.endswith("/c/demo/portal/")
    assert page.locator(".thumbs img").count() >= 4
