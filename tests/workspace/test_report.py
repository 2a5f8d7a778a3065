"""The visit report, read back as text with pypdf."""

import io
import time

import pytest
from django.urls import reverse
from pypdf import PdfReader

from clinic.tenancy import operator_context
from patients import services


def _text(pdf: bytes) -> tuple[str, PdfReader]:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages), reader


@pytest.fixture
def report_world(history):
    with operator_context():
        history.clinic_a.report_header = "Clinic A Dermatology\n1 Test Street, Testville · +1 555 0100"
        history.clinic_a.save(update_fields=["report_header"])
        visit = history.visits[-1]
        services.grade_set(visit=visit, scale="norwood", value="IV", by=history.users["clinician"])
        services.note_create(visit=visit, author=history.users["clinician"],
                             text="Marked vertex thinning; retake hairline.")
    return history


def _get(client, world, **params):
    url = reverse("visit_report", args=[world.clinic_a.slug, world.visits[-1].id])
    return client.get(url, params)


def test_it_prints_everything_a_clinic_files(report_world, login):
    response = _get(login(report_world.users["clinician"]), report_world)
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("inline;")
    text, reader = _text(response.content)
    flat = " ".join(text.split())
    for expected in ["Change since baseline", "Clinic A Dermatology", "1 Test Street", "Visit report", "A-001",
                     "Views and heatmaps",
                     "Measurements", "Density", "vs baseline", "Trend", "AI suggestion", "Norwood III",
                     "Confirmed grade", "Norwood–Hamilton IV", "Minoxidil 5% foam", "1 ml twice daily",
                     "Marked vertex thinning", "Quality caveats", "not comparable", "Hair wet",
                     "supports", "does not replace", "diagnosis", "Signature"]:
        assert expected in flat, expected
    width, height = reader.pages[0].mediabox.width, reader.pages[0].mediabox.height
    assert (round(float(width)), round(float(height))) == (595, 842)  # A4 in points


def test_it_prints_on_letter_and_downloads(report_world, login):
    response = _get(login(report_world.users["clinician"]), report_world, paper="letter", download="1")
    assert response["Content-Disposition"].startswith('attachment; filename="visit-report-A-001-')
    _, reader = _text(response.content)
    assert (round(float(reader.pages[0].mediabox.width)), round(float(reader.pages[0].mediabox.height))) == (612, 792)


def test_it_marks_significant_changes(report_world, login):
    url = reverse("visit_report", args=[report_world.clinic_a.slug, report_world.visits[1].id])
    text, _ = _text(login(report_world.users["clinician"]).get(url).content)
    assert "−7.0% ± 4.5 *" in " ".join(text.split())


def test_it_renders_in_under_two_seconds(report_world, login):
    client = login(report_world.users["clinician"])
    started = time.perf_counter()
    _get(client, report_world)
    assert time.perf_counter() - started < 2.0


def test_it_embeds_the_jpeg_heatmaps_and_the_png_ones_stored_before(report_world, login):
    from analysis.models import PhotoResult

    client = login(report_world.users["clinician"])
    for visit, ext in ((report_world.visits[-1], ".jpg"), (report_world.visits[1], ".png")):
        with operator_context():
            names = [r.heatmap.name for r in PhotoResult.objects.filter(photo__visit=visit)]
        assert names and all(name.endswith(ext) for name in names), names
        url = reverse("visit_report", args=[report_world.clinic_a.slug, visit.id])
        text, reader = _text(client.get(url).content)
        assert "image unavailable" not in text
        assert sum(len(page.images) for page in reader.pages) >= len(names)
