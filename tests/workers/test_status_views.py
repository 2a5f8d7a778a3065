"""Status endpoints, the retry button and the live status panel on the upload page."""

import pytest
from django.urls import reverse

from analysis.models import AnalysisRun
from clinic.models import Role
from clinic.tenancy import operator_context
from tests import factories


@pytest.fixture
def photos(world):
    made = [factories.make_photo(world.visit_a, view=view, seed=i) for i, view in enumerate(["crown", "hairline"])]
    with operator_context():
        AnalysisRun.objects.filter(photo=made[0]).update(status="running", attempts=1)
        AnalysisRun.objects.filter(photo=made[1]).update(status="failed", attempts=1, error_kind="bad_input",
                                                         error_reason="The file is not a readable image.")
    return made


def status_url(world, visit=None):
    return reverse("analysis_visit_status", args=["clinic-a", (visit or world.visit_a).id])


def test_it_reports_each_photo_and_the_visit_progress(world, photos, login, django_assert_max_num_queries):
    client = login(world.users[Role.CLINICIAN])
    with django_assert_max_num_queries(12):
        data = client.get(status_url(world)).json()
    by_photo = {p["photo"]: p for p in data["photos"]}
    assert by_photo[str(photos[0].id)]["status"] == "running"
    failed = by_photo[str(photos[1].id)]
    assert failed["status"] == "failed" and failed["error"] == "The file is not a readable image."
    assert failed["can_retry"] is True
    assert (data["total"], data["finished"], data["all_finished"]) == (2, 1, False)


def test_a_single_photo_has_its_own_status(world, photos, login):
    response = login(world.users[Role.STAFF]).get(
        reverse("analysis_photo_status", args=["clinic-a", photos[0].id]))
    assert response.json()["status"] == "running" and response["Cache-Control"] == "no-store"


def test_other_clinics_and_other_patients_get_404(world, photos, login):
    assert login(world.b_clinician).get(status_url(world)).status_code == 404
    assert login(world.other_patient_user).get(status_url(world)).status_code == 404
    b_visit_url = reverse("analysis_visit_status", args=["clinic-a", world.visit_b.id])
    assert login(world.users[Role.CLINICIAN]).get(b_visit_url).status_code == 404


def test_retry_creates_a_new_queued_run(world, photos, login):
    with operator_context():
        failed = AnalysisRun.objects.get(photo=photos[1])
    url = reverse("analysis_run_retry", args=["clinic-a", failed.id])
    response = login(world.users[Role.CLINICIAN]).post(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    with operator_context():
        runs = list(AnalysisRun.objects.filter(photo=photos[1]).order_by("queued_at"))
    assert [r.status for r in runs] == ["failed", "queued"] and runs[1].reason == "retry"


def test_only_the_care_team_of_the_clinic_may_retry(world, photos, login):
    with operator_context():
        failed = AnalysisRun.objects.get(photo=photos[1])
        running = AnalysisRun.objects.get(photo=photos[0])
    url = reverse("analysis_run_retry", args=["clinic-a", failed.id])
    assert login(world.users[Role.PATIENT]).post(url).status_code == 403
    assert login(world.b_clinician).post(url).status_code == 404
    assert login(world.users[Role.CLINICIAN]).get(url).status_code == 405
    not_failed = reverse("analysis_run_retry", args=["clinic-a", running.id])
    assert login(world.users[Role.CLINICIAN]).post(not_failed).status_code == 409


def test_the_upload_page_shows_live_analysis_status(world, photos, login):
    page = login(world.users[Role.STAFF]).get(reverse("photo_upload", args=["clinic-a", world.visit_a.id]))
    html = page.content.decode()
    assert page.status_code == 200
    assert f'data-status-url="{status_url(world)}"' in html
    assert f'data-analysis-photo="{photos[1].id}" data-status="failed">Failed<' in html
    assert "The file is not a readable image." in html and "analysis-status.js" in html
    assert "1 of 2 photos finished" in html
