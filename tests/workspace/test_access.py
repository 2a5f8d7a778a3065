"""Every workspace URL that names an object: each role of clinic A, clinic B's clinician, a patient
who does not own the record, an outsider and an anonymous visitor."""

import pytest
from django.urls import reverse

from analysis.models import AnalysisRun
from clinic.tenancy import operator_context
from patients import services

READ = {"admin": 200, "clinician": 200, "staff": 200, "patient": 403}


@pytest.fixture
def urls(history):
    slug = history.clinic_a.slug
    visit = history.visits[-1]
    with operator_context():
        photo = visit.photos.order_by("view").first()
        run = AnalysisRun.objects.filter(photo__visit=visit, status="done", comparisons__against="baseline").first()
    return {
        "timeline": reverse("patient_detail", args=[slug, history.patient_a.id]),
        "visit": reverse("visit_detail", args=[slug, visit.id]),
        "compare": reverse("compare", args=[slug, history.patient_a.id]),
        "report": reverse("visit_report", args=[slug, visit.id]),
        "thumb": reverse("photo_thumb", args=[slug, photo.id]),
        "heatmap": reverse("run_heatmap", args=[slug, run.id]),
        "change_map": reverse("run_change_map", args=[slug, run.id, "baseline"]),
    }


@pytest.mark.parametrize("name", ["timeline", "visit", "compare", "report", "heatmap", "change_map"])
def test_it_serves_the_care_team_and_refuses_the_rest(history, urls, login, client, name):
    url = urls[name]
    for role, status in READ.items():
        assert login(history.users[role]).get(url).status_code == status, (role, url)
    # The patient who owns the record still does not see the clinician workspace (403 above); one who
    # does not own it cannot even learn that it exists.
    assert login(history.other_patient_user).get(url).status_code == 404
    assert login(history.b_clinician).get(url).status_code == 404
    assert login(history.outsider).get(url).status_code == 404
    client.logout()
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_pictures_are_served_as_stored_jpeg_now_and_png_from_before(history, login):
    client = login(history.users["clinician"])
    slug = history.clinic_a.slug
    stored = {history.visits[-1]: ("image/jpeg", b"\xff\xd8\xff"), history.visits[1]: ("image/png", b"\x89PNG")}
    for visit, (kind, magic) in stored.items():
        with operator_context():
            run = AnalysisRun.objects.filter(photo__visit=visit, comparisons__against="baseline",
                                             comparisons__data__comparable=True).first()
        heatmap = reverse("run_heatmap", args=[slug, run.id])
        change_map = reverse("run_change_map", args=[slug, run.id, "baseline"])
        # ... and at the .png addresses the pictures had before they became JPEGs.
        for url in (heatmap, change_map, heatmap + ".png", change_map + ".png"):
            response = client.get(url)
            assert response.status_code == 200 and response["Content-Type"] == kind, url
            assert b"".join(response.streaming_content).startswith(magic)


def test_a_thumbnail_is_served_to_whoever_may_see_the_photo(history, urls, login, client):
    url = urls["thumb"]
    for role in READ:  # the care team and the patient who owns the photo (their portal shows it)
        response = login(history.users[role]).get(url)
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg", role
    for other in (history.other_patient_user, history.b_clinician, history.outsider):
        assert login(other).get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302


def test_it_answers_404_for_clinic_b_objects_under_clinic_a(history, login):
    client = login(history.users["clinician"])
    slug = history.clinic_a.slug
    for url in [reverse("patient_detail", args=[slug, history.patient_b.id]),
                reverse("visit_detail", args=[slug, history.b_visits[0].id]),
                reverse("visit_report", args=[slug, history.b_visits[0].id]),
                reverse("compare", args=[slug, history.patient_b.id])]:
        assert client.get(url).status_code == 404, url


WRITE = {"admin": 302, "clinician": 302, "staff": 403, "patient": 403}


def _write_urls(world):
    slug = world.clinic_a.slug
    visit = world.visits[-1]
    with operator_context():
        photo = visit.photos.first()
        note = services.note_create(visit=visit, author=None, text="original")
        treatment = world.patient_a.treatments.first()
    return [
        (reverse("grade_set", args=[slug, visit.id]), {"grade": "norwood:IV"}),
        (reverse("note_add", args=[slug, visit.id]), {"text": "New finding"}),
        (reverse("note_edit", args=[slug, note.id]), {"text": "edited"}),
        (reverse("treatment_add", args=[slug, world.patient_a.id]), {"name": "Finasteride", "dose": "1 mg",
                                                                     "start": "2026-01-01"}),
        (reverse("treatment_edit", args=[slug, treatment.id]), {"name": "Minoxidil", "dose": "2 ml",
                                                                "start": "2025-12-01", "stop": "2026-06-01"}),
        (reverse("photo_correct", args=[slug, photo.id]), {"action": "exclude"}),
        (reverse("baseline_set", args=[slug, world.patient_a.id]), {"visit": str(world.visits[1].id)}),
    ]


def test_it_lets_only_clinicians_and_admins_write(history, login, client):
    for url, data in _write_urls(history):
        for role, status in WRITE.items():
            assert login(history.users[role]).post(url, data).status_code == status, (role, url)
        for user in (history.other_patient_user, history.b_clinician, history.outsider):
            assert login(user).post(url, data).status_code == 404, (user, url)
        client.logout()
        assert client.post(url, data).status_code == 302
        assert client.get(url).status_code in (302, 405)


def test_it_refuses_get_on_writes(history, login):
    client = login(history.users["clinician"])
    url, _ = _write_urls(history)[0]
    assert client.get(url).status_code == 405


def test_it_404s_for_a_visit_of_another_clinic_used_as_baseline(history, login):
    client = login(history.users["clinician"])
    url = reverse("baseline_set", args=[history.clinic_a.slug, history.patient_a.id])
    assert client.post(url, {"visit": str(history.b_visits[0].id)}).status_code == 404

