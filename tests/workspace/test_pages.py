"""What the clinician sees and what each write records."""

import pytest
from django.urls import reverse

from analysis.models import AnalysisRun
from clinic.tenancy import operator_context
from patients.models import ClinicalNote, Photo, SeverityGrade, Treatment, TreatmentRevision
from tests import factories
from tests.workspace import builders


@pytest.fixture
def clinician(history, login):
    return login(history.users["clinician"])


def test_it_shows_the_change_since_baseline_on_the_timeline(history, clinician):
    page = clinician.get(reverse("patient_detail", args=[history.clinic_a.slug, history.patient_a.id])).content.decode()
    assert "Not comparable" in page and "Camera tilted 14° more than at baseline" in page
    assert "within measurement noise" in page or "worsening" in page or "improving" in page
    assert "Worse than baseline, beyond measurement noise, in 4 views." in page  # hairline is not comparable
    assert 'id="trend-data"' in page and "Minoxidil 5% foam" in page
    assert page.count('class="tl-visit') == 5 and "Baseline" in page


def test_it_shows_flags_calibration_changes_and_the_ai_grade_on_the_visit_page(history, clinician):
    visit = history.visits[1]  # 7% loss at a 4.5% uncertainty: significant; left temple out of focus
    page = clinician.get(reverse("visit_detail", args=[history.clinic_a.slug, visit.id])).content.decode()
    assert "Out of focus" in page and "Quality flagged" in page
    assert "from calibration card" in page and "mm/px" in page
    assert "chg sig-bad" in page and "−7.0%" in page
    assert "AI suggestion" in page and "III vertex" in page and "Heatmap overlay" in page


def test_it_explains_not_comparable_on_the_visit_page(history, clinician):
    page = clinician.get(reverse("visit_detail", args=[history.clinic_a.slug, history.visits[-1].id])).content.decode()
    assert "Not comparable with the baseline photo:" in page and "Hair wet" in page


def test_it_records_the_clinicians_grade_with_who_and_when(history, clinician):
    visit = history.visits[-1]
    clinician.post(reverse("grade_set", args=[history.clinic_a.slug, visit.id]), {"grade": "norwood:III vertex"})
    with operator_context():
        grade = SeverityGrade.objects.filter(visit=visit, source="clinician").get()
    assert (grade.scale, grade.value, grade.graded_by) == ("norwood", "III vertex", history.users["clinician"])
    page = clinician.get(reverse("visit_detail", args=[history.clinic_a.slug, visit.id])).content.decode()
    assert 'data-test="grade-value">III vertex<' in page


def test_it_rejects_a_grade_outside_the_scales(history, clinician):
    visit = history.visits[-1]
    clinician.post(reverse("grade_set", args=[history.clinic_a.slug, visit.id]), {"grade": "norwood:IX"})
    with operator_context():
        assert not SeverityGrade.objects.filter(visit=visit, source="clinician").exists()


def test_it_keeps_the_history_of_an_edited_note(history, clinician):
    slug, visit = history.clinic_a.slug, history.visits[-1]
    clinician.post(reverse("note_add", args=[slug, visit.id]), {"text": "Vertex thinning, plan minoxidil."})
    with operator_context():
        note = ClinicalNote.objects.get(visit=visit, text__startswith="Vertex")
    clinician.post(reverse("note_edit", args=[slug, note.id]), {"text": "Vertex thinning; plan minoxidil 5%."})
    with operator_context():
        note.refresh_from_db()
        assert note.text.endswith("5%.") and [r.text for r in note.revisions.all()] == [
            "Vertex thinning, plan minoxidil."]
    page = clinician.get(reverse("visit_detail", args=[slug, visit.id])).content.decode()
    assert "History (1 earlier version)" in page


def test_it_adds_and_stops_a_treatment(history, clinician):
    slug = history.clinic_a.slug
    clinician.post(reverse("treatment_add", args=[slug, history.patient_a.id]),
                   {"name": "Finasteride", "dose": "1 mg daily", "start": "2026-01-05"})
    with operator_context():
        treatment = Treatment.objects.get(patient=history.patient_a, name="Finasteride")
    clinician.post(reverse("treatment_edit", args=[slug, treatment.id]),
                   {"name": "Finasteride", "dose": "1 mg daily", "start": "2026-01-05", "stop": "2026-04-01"})
    with operator_context():
        treatment.refresh_from_db()
    assert str(treatment.stop) == "2026-04-01" and treatment.created_by == history.users["clinician"]


def test_a_treatment_edit_keeps_what_it_said_before(history, clinician):
    slug = history.clinic_a.slug
    clinician.post(reverse("treatment_add", args=[slug, history.patient_a.id]),
                   {"name": "Minoxidil", "dose": "5% foam", "start": "2026-02-01", "notes": "twice daily"})
    with operator_context():
        treatment = Treatment.objects.get(patient=history.patient_a, name="Minoxidil")
    edit = {"name": "Minoxidil", "dose": "2% foam", "start": "2026-02-01", "stop": "", "notes": "twice daily"}
    clinician.post(reverse("treatment_edit", args=[slug, treatment.id]), edit)
    clinician.post(reverse("treatment_edit", args=[slug, treatment.id]), edit)  # unchanged: no revision
    with operator_context():
        revisions = list(TreatmentRevision.objects.filter(treatment=treatment))
        treatment.refresh_from_db()
    kept = [(r.dose, r.notes, r.edited_by) for r in revisions]
    assert kept == [("5% foam", "twice daily", history.users["clinician"])]
    assert treatment.dose == "2% foam" and treatment.notes == "twice daily"
    page = clinician.get(reverse("patient_detail", args=[slug, history.patient_a.id])).content.decode()
    assert "Earlier versions" in page and "5% foam" in page


def test_it_refuses_a_treatment_that_stops_before_it_starts(history, clinician):
    clinician.post(reverse("treatment_add", args=[history.clinic_a.slug, history.patient_a.id]),
                   {"name": "Finasteride", "start": "2026-01-05", "stop": "2025-01-01"})
    with operator_context():
        assert not Treatment.objects.filter(name="Finasteride").exists()


def test_it_corrects_a_photo_and_requests_reanalysis(history, clinician):
    slug = history.clinic_a.slug
    with operator_context():
        photo = history.visits[-1].photos.get(view="crown")
    url = reverse("photo_correct", args=[slug, photo.id])
    clinician.post(url, {"action": "exclude"})
    clinician.post(url, {"action": "scale", "mm_per_px": "0.075"})
    clinician.post(url, {"action": "reanalyse"})
    with operator_context():
        photo.refresh_from_db()
        reasons = list(AnalysisRun.objects.filter(photo=photo).exclude(status="done").values_list("reason", flat=True))
    assert photo.excluded_from_trend and photo.mm_per_px_override == 0.075
    assert sorted(reasons) == ["clinician", "scale corrected"]
    page = clinician.get(reverse("visit_detail", args=[slug, photo.visit_id])).content.decode()
    assert "Excluded from trend" in page and "set by clinician" in page and "Newer run queued" in page


def test_the_staff_see_the_timeline_without_write_controls(history, login):
    page = login(history.users["staff"]).get(
        reverse("patient_detail", args=[history.clinic_a.slug, history.patient_a.id])).content.decode()
    assert "Make baseline" not in page and "Add treatment" not in page and "tl-thumb" in page


def test_it_changes_the_baseline_and_re_measures_against_it(history, clinician):
    slug = history.clinic_a.slug
    clinician.post(reverse("baseline_set", args=[slug, history.patient_a.id]), {"visit": str(history.visits[1].id)})
    with operator_context():
        history.patient_a.refresh_from_db()
        queued = AnalysisRun.objects.filter(visit__patient=history.patient_a, reason="baseline changed")
        assert {run.visit_id for run in queued} == {history.visits[0].id, history.visits[2].id, history.visits[3].id}
    assert history.patient_a.baseline_visit_id == history.visits[1].id
    # Until the new runs are done, nothing measured against the old baseline is shown as a change.
    page = clinician.get(reverse("patient_detail", args=[slug, history.patient_a.id])).content.decode()
    assert "Re-measuring" in page and "worsening" not in page
    page = clinician.get(reverse("visit_detail", args=[slug, history.visits[2].id])).content.decode()
    assert "Baseline changed:" in page


def test_it_compares_two_visits_with_the_saved_change_map(history, clinician):
    slug = history.clinic_a.slug
    url = reverse("compare", args=[slug, history.patient_a.id])
    page = clinician.get(url, {"a": history.visits[0].id, "b": history.visits[2].id, "view": "crown"}).content.decode()
    assert "/change-baseline" in page and "Registered pair" in page and 'id="swipe"' in page
    page = clinician.get(url, {"a": history.visits[1].id, "b": history.visits[3].id, "view": "crown"}).content.decode()
    assert "No saved registration for this pair" in page


def _timeline_queries(client, world, visits):
    """Queries of the first (rendering) and the second (cached) view of a patient's timeline."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    patient = factories.make_patient(world.clinic_a, f"Q-{visits}")
    builders.build_history(patient, visits=visits, grades=True, notes=True)
    url = reverse("patient_detail", args=[world.clinic_a.slug, patient.id])
    counts = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        counts.append(len(queries))
    return counts, response


def test_the_timeline_query_count_does_not_grow_with_visits(world, login):
    client = login(world.users["clinician"])
    few, _ = _timeline_queries(client, world, 5)
    many, response = _timeline_queries(client, world, 50)
    assert few == many
    assert many[0] <= 16 and many[1] <= 8  # rendering (treatment revisions: 1), then cached (savepoints included)
    assert response.content.decode().count('<a class="tl-thumb') == 250


def test_the_cached_timeline_shows_every_change_at_once(history, clinician):
    slug = history.clinic_a.slug
    url = reverse("patient_detail", args=[slug, history.patient_a.id])
    assert "Finasteride" not in clinician.get(url).content.decode()
    with operator_context():
        photo = history.visits[-1].photos.get(view="crown")
    clinician.post(reverse("treatment_add", args=[slug, history.patient_a.id]),
                   {"name": "Finasteride", "start": "2026-01-05"})
    clinician.post(reverse("note_add", args=[slug, history.visits[-1].id]), {"text": "Brand-new note text"})
    clinician.post(reverse("grade_set", args=[slug, history.visits[-1].id]), {"grade": "norwood:V"})
    clinician.post(reverse("photo_correct", args=[slug, photo.id]), {"action": "exclude"})
    page = clinician.get(url).content.decode()
    assert "Finasteride" in page and "Brand-new note text" in page and "Norwood–Hamilton V" in page
    assert 'tl-thumb excluded' in page
    clinician.post(reverse("baseline_set", args=[slug, history.patient_a.id]), {"visit": str(history.visits[1].id)})
    page = clinician.get(url).content.decode()
    assert page.index('<span class="badge base">Baseline</span>') > page.index(str(history.visits[2].id))
    clinician.post(reverse("photo_correct", args=[slug, photo.id]), {"action": "reanalyse"})
    assert 'title="Newer analysis queued"' in clinician.get(url).content.decode()
    with operator_context():
        AnalysisRun.objects.filter(photo=photo, status="queued").update(status="running")
    page = clinician.get(url).content.decode()
    assert 'title="Newer analysis running"' in page  # and the done result stays on screen meanwhile


def test_the_visit_page_query_count_is_bounded(history, login, django_assert_max_num_queries):
    client = login(history.users["clinician"])
    with django_assert_max_num_queries(22):
        client.get(reverse("visit_detail", args=[history.clinic_a.slug, history.visits[-1].id]))


def test_photos_excluded_from_the_trend_are_marked_in_the_chart_data(history, clinician):
    with operator_context():
        Photo.objects.filter(visit=history.visits[1], view="crown").update(excluded_from_trend=True)
    response = clinician.get(reverse("patient_detail", args=[history.clinic_a.slug, history.patient_a.id]))
    series = response.context["trend_json"]["series"]["crown"]["points"]["density_per_cm2"]
    assert [p.get("x", False) for p in series] == [False, True, False, False]
    assert all(p["e"] for p in series[1:]) and series[0].get("b") and not any(p.get("b") for p in series[1:])


def test_every_visit_page_renders_including_notes_and_grades_without_an_author(history, clinician):
    # The builders' notes and AI grades have no user, as after a clinician's account is deleted.
    for visit in history.visits:
        assert clinician.get(reverse("visit_detail", args=[history.clinic_a.slug, visit.id])).status_code == 200


def test_empty_records_render(world, login):
    client = login(world.users["clinician"])
    slug = world.clinic_a.slug
    bare = factories.make_patient(world.clinic_a, "A-EMPTY")
    assert "No visits yet" in client.get(reverse("patient_detail", args=[slug, bare.id])).content.decode()
    # Two patients without visits have the same timeline version: each still gets their own page.
    other = factories.make_patient(world.clinic_a, "A-EMPTY-2")
    page = client.get(reverse("patient_detail", args=[slug, other.id])).content.decode()
    assert str(other.id) in page.split("No visits yet")[1] and str(bare.id) not in page
    # patient_a has one visit without photos
    assert client.get(reverse("patient_detail", args=[slug, world.patient_a.id])).status_code == 200
    assert "No photos in this visit yet" in client.get(
        reverse("visit_detail", args=[slug, world.visit_a.id])).content.decode()
    report = client.get(reverse("visit_report", args=[slug, world.visit_a.id]))
    assert report.status_code == 200 and report.content.startswith(b"%PDF")
    assert client.get(reverse("compare", args=[slug, world.patient_a.id])).status_code == 302


def test_an_uncalibrated_overview_is_judged_on_scalp_visibility(history, clinician):
    """The engine gives no density without a scale, and empty change values for it."""
    from analysis.models import PhotoComparison, PhotoResult

    with operator_context():
        for result in PhotoResult.objects.filter(photo__visit__patient=history.patient_a, photo__view="crown"):
            result.metrics = {**result.metrics, "density_per_cm2": None, "mean_caliber_um": None,
                              "calibration": {"mm_per_px": None, "tilt_deg": None, "source": "none"}}
            result.save(update_fields=["metrics"])
        for comparison in PhotoComparison.objects.filter(photo__visit__patient=history.patient_a, photo__view="crown"):
            changes = comparison.data["changes"]
            changes["density_per_cm2"] = {"baseline": None, "followup": None, "change_pct": None,
                                          "uncertainty_pct": None, "significant": False}
            comparison.save(update_fields=["data"])
    page = clinician.get(reverse("patient_detail", args=[history.clinic_a.slug, history.patient_a.id])).content.decode()
    summary = page[page.index("ws-summary"):page.index("ws-trends")]
    assert "scalp visibility ± 6.0%" in summary and "<small> scalp</small>" in page, summary
    visit = clinician.get(reverse("visit_detail", args=[history.clinic_a.slug, history.visits[-1].id])).content.decode()
    assert "No scale: sizes are not calibrated" in visit
    report = clinician.get(reverse("visit_report", args=[history.clinic_a.slug, history.visits[-1].id]))
    assert report.status_code == 200
