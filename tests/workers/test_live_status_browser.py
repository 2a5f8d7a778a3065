"""The live analysis status in a real browser: badges follow the run without a page reload, a
failed photo shows its reason and a Retry button, and polling stops once everything is finished."""

import pytest

from analysis.models import AnalysisRun
from clinic.tenancy import operator_context
from tests import factories
from tests.browser import log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def upload_page(transactional_db, monkeypatch):
    monkeypatch.setattr("analysis.tasks.send", lambda **kwargs: None)  # runs move only when the test says
    clinic = factories.make_clinic("clinic-a", "Clinic A")
    staff = factories.make_user("staff-user")
    factories.add_member(staff, clinic, "clinician")
    visit = factories.make_visit(factories.make_patient(clinic, "A-1"))
    photo = factories.make_photo(visit, view="crown")
    return f"/c/clinic-a/visits/{visit.id}/upload/", photo


def set_run(photo, **fields):
    with operator_context():
        AnalysisRun.objects.filter(photo=photo).update(**fields)


def test_badges_follow_the_run_without_a_reload(upload_page, page):
    url, photo = upload_page
    log_in(page, "staff-user", "pw-staff-user")
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "/analysis/visits/" in request.url else None)
    page.goto(url)
    badge = page.locator(f'.analysis-list [data-analysis-photo="{photo.id}"]')
    assert badge.inner_text() == "Queued"
    page.evaluate("window.__sameDocument = true")

    set_run(photo, status="running")
    page.wait_for_function(f"""document.querySelector('.analysis-list [data-analysis-photo="{photo.id}"]')
                              .textContent === 'Running'""")
    set_run(photo, status="failed", error_kind="bad_input", error_reason="The image is blank (a single colour).")
    page.wait_for_function("document.querySelector('[data-analysis-progress]').textContent.includes('1 failed')")
    assert "The image is blank" in page.inner_text(".analysis-list")
    assert page.locator("[data-analysis-retry]").is_visible()
    assert page.evaluate("window.__sameDocument") is True, "updated in place, not reloaded"

    page.wait_for_timeout(3500)  # two polling intervals: nothing may be fetched once all are finished
    finished_at = len(polls)
    page.wait_for_timeout(3500)
    assert len(polls) == finished_at

    page.click("[data-analysis-retry] button")
    page.wait_for_function("document.querySelector('[data-analysis-retry]').hidden")
    with operator_context():
        assert list(AnalysisRun.objects.filter(photo=photo).order_by("queued_at").values_list("status", flat=True)) \
            == ["failed", "queued"]
    page.wait_for_function(f"""document.querySelector('.analysis-list [data-analysis-photo="{photo.id}"]')
                              .textContent === 'Queued'""")
    assert page.evaluate("window.__sameDocument") is True
