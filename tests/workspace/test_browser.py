"""The clinician's whole flow in Debian's Chromium: timeline, compare with the slider, grade, note,
report download. One browser session; screenshots land in $WORKSPACE_SCREENSHOTS when set."""

import os
from pathlib import Path

import pytest

from tests import factories
from tests.browser import LAPTOP, TABLET
from tests.workspace import builders

pytestmark = pytest.mark.browser


def _shot(page, name, full_page=True):
    folder = os.environ.get("WORKSPACE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        if full_page:  # let lazy thumbnails load
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            page.wait_for_load_state("networkidle")
            page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=f"{folder}/{name}.png", full_page=full_page)


def test_a_clinician_reviews_compares_grades_notes_and_prints(world, live_server, chromium, tmp_path):
    clinician = world.users["clinician"]
    clinician.first_name, clinician.last_name = "Dana", "Derm"
    clinician.save(update_fields=["first_name", "last_name"])
    patient = factories.make_patient(world.clinic_a, "A-777", first_name="Pat", last_name="Jones",
                                     sex_at_birth="male")
    visits = builders.build_history(patient, visits=4, with_files=True, not_comparable_last=True)

    context = chromium.new_context(viewport=LAPTOP, base_url=live_server.url, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/accounts/login/")
    page.fill("input[name=username]", "a-clinician")
    page.fill("input[name=password]", "pw-a-clinician")
    page.click("button[type=submit]")
    page.goto("/c/clinic-a/")
    page.click("text=Jones, Pat")
    page.wait_for_url(f"**/patients/{patient.id}/")
    assert page.locator(".tl-visit").count() == 4
    assert page.locator("#trend-charts svg").count() == 5
    page.click("#trend-views button:has-text('Hairline')")
    assert page.locator("#trend-views button[aria-selected=true]").inner_text() == "Hairline"
    _shot(page, "timeline-laptop")

    page.click("[data-test=compare]")
    page.wait_for_url("**/compare/**")
    page.wait_for_function("document.querySelector('#zoom-level').textContent === '100%'")
    page.click("[data-mode=swipe]")
    slider = page.locator("#swipe")
    slider.focus()
    for _ in range(20):
        page.keyboard.press("ArrowLeft")
    assert slider.input_value() == "30"
    assert page.evaluate("getComputedStyle(document.getElementById('compare')).getPropertyValue('--swipe')") == "30%"
    page.click("[data-zoom=in]")
    transforms = page.eval_on_selector_all(".world", "ws => ws.map(w => w.style.transform)")
    assert len(set(transforms)) == 1 and "scale" in transforms[0]  # every pane moves together
    _shot(page, "compare-swipe-laptop", full_page=False)
    page.click("[data-mode=change]")
    _shot(page, "compare-change-laptop", full_page=False)

    page.goto(f"/c/clinic-a/visits/{visits[-1].id}/")
    page.select_option("select[name=grade]", "norwood:IV")
    page.click("[data-test=grade-save]")
    assert page.inner_text("[data-test=grade-value]") == "IV"
    assert "Dana Derm" in page.inner_text("#grading")
    page.fill("textarea[name=text][aria-label='New note']", "Vertex thinning progressing; add finasteride.")
    page.click("[data-test=note-save]")
    assert "Vertex thinning progressing" in page.inner_text("#notes")
    page.uncheck("[data-heatmap-toggle] >> nth=0")
    assert "on" not in page.get_attribute(".overlay-wrap >> nth=0", "class").split()
    _shot(page, "visit-laptop")

    with page.expect_download() as download_info:
        page.click("[data-test=report-download]")
    report = tmp_path / "report.pdf"
    download_info.value.save_as(report)
    assert report.read_bytes().startswith(b"%PDF") and download_info.value.suggested_filename.endswith(".pdf")

    if os.environ.get("WORKSPACE_SCREENSHOTS"):
        page.set_viewport_size(TABLET)
        page.reload()
        _shot(page, "visit-tablet")
        page.goto(f"/c/clinic-a/patients/{patient.id}/")
        _shot(page, "timeline-tablet")
        page.goto(f"/c/clinic-a/patients/{patient.id}/compare/")
        page.wait_for_timeout(300)
        _shot(page, "compare-side-tablet", full_page=False)
        page.click("[data-mode=swipe]")
        page.wait_for_timeout(200)
        _shot(page, "compare-swipe-tablet", full_page=False)
    context.close()
