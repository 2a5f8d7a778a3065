"""The cached timeline is keyed on Patient.timeline_version, which database triggers raise in the
transaction of every write the timeline shows, whoever writes: each write path here must raise it
(and change the page), only for its own patient, and the bookkeeping that shows nothing must not."""

import datetime
import uuid
from types import SimpleNamespace

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from analysis import services as analysis_services
from analysis.models import AnalysisRun, PhotoComparison, PhotoResult
from clinic.tenancy import clinic_context, operator_context
from patients import services
from patients.models import AuditEvent, ClinicalNote, Patient, Photo, SeverityGrade, Treatment
from tests import factories
from tests.workspace import builders


@pytest.fixture
def clinician(history, login):
    return login(history.users["clinician"])


@pytest.fixture(autouse=True)
def sent(monkeypatch):
    """Messages to the workers, instead of a broker."""
    messages = []
    monkeypatch.setattr("analysis.tasks.send", lambda **kw: messages.append(kw))
    return messages


def _versions(world) -> tuple[int, int]:
    with operator_context():
        return tuple(Patient.objects.get(id=p.id).timeline_version for p in (world.patient_a, world.patient_b))


def _crown(visit) -> Photo:
    return Photo.objects.get(visit=visit, view="crown")


def _queued_run(world):
    return analysis_services.analysis_request(photo=_crown(world.visits[-1]), reason="test", send=False)


def _claimed_run(world):
    run = _queued_run(world)
    return analysis_services.run_claim(clinic_id=run.clinic_id, run_id=run.id, token=uuid.UUID(int=1), worker="t",
                                       lease_s=60)


def _outcome(density):
    metrics = builders.metrics_for("crown", 1.0)
    return SimpleNamespace(metrics={**metrics, "density_per_cm2": density}, quality_ok=True, heatmap_jpeg=None,
                           mask_png=None)


# Each write as the web or a worker makes it, inside clinic A's transaction (setup happens before).
WRITES = {
    "visit created": lambda w: services.visit_create(patient=w.patient_a, visit_date=datetime.date.today()),
    "visit deleted": lambda w: w.visits[-1].delete(),
    "photo uploaded": lambda w: services.photo_upload(visit=w.visits[-1], data=factories.jpeg_bytes(seed=99),
                                                      view="part_line", uploaded_by=None),
    "photo excluded": lambda w: services.photo_trend_exclusion_set(photo=_crown(w.visits[1]), excluded=True),
    "photo scale set": lambda w: services.photo_scale_set(photo=_crown(w.visits[1]), mm_per_px=0.01, by=None),
    "grade": lambda w: services.grade_set(visit=w.visits[1], scale="norwood", value="IV", by=None),
    "note": lambda w: services.note_create(visit=w.visits[1], author=None, text="new"),
    "note edited": lambda w: services.note_edit(note=ClinicalNote.objects.filter(visit__patient=w.patient_a).first(),
                                                editor=None, text="edited"),
    "treatment": lambda w: services.treatment_create(patient=w.patient_a, name="PRP", start=datetime.date.today()),
    "treatment edited": lambda w: services.treatment_update(
        treatment=Treatment.objects.get(patient=w.patient_a), name="Minoxidil", dose="", stop=None,
        start=datetime.date.today()),
    "baseline": lambda w: services.patient_baseline_set(patient=w.patient_a, visit=w.visits[1]),
    "patient renamed": lambda w: Patient.objects.filter(id=w.patient_a.id).update(last_name="Renamed"),
    "analysis requested": _queued_run,
    "reanalysis": lambda w: analysis_services.analysis_reanalyze(photos=[_crown(w.visits[1])], reason="test"),
    "result corrected": lambda w: PhotoResult.objects.filter(photo=_crown(w.visits[1])).update(quality_ok=False),
    "comparison deleted": lambda w: PhotoComparison.objects.filter(photo=_crown(w.visits[1])).delete(),
    "grade deleted": lambda w: SeverityGrade.objects.filter(visit=w.visits[1]).delete(),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_every_write_the_timeline_shows_raises_only_its_patients_version(history, write):
    before = _versions(history)
    with clinic_context(history.clinic_a.id):
        WRITES[write](history)
    after = _versions(history)
    assert after[0] > before[0], write
    assert after[1] == before[1]  # clinic B's patient is untouched


def test_the_workers_steps_raise_the_version_and_their_bookkeeping_does_not(history):
    with clinic_context(history.clinic_a.id):
        queued = _queued_run(history)
    steps = []

    def step(name, write):
        before = _versions(history)[0]
        write()
        steps.append((name, _versions(history)[0] > before))

    token = uuid.UUID(int=7)
    step("sent", lambda: analysis_services.runs_send(clinic_id=str(queued.clinic_id), run_ids=[str(queued.id)]))
    step("claimed", lambda: analysis_services.run_claim(clinic_id=queued.clinic_id, run_id=queued.id, token=token,
                                                        worker="w", lease_s=60))
    step("renewed", lambda: analysis_services.runs_renew(clinic_id=queued.clinic_id, run_ids=[queued.id],
                                                         token=token, lease_s=60))
    step("released", lambda: analysis_services.run_release(run=queued, token=token, reason="broker hiccup"))
    analysis_services.run_claim(clinic_id=queued.clinic_id, run_id=queued.id, token=token, worker="w", lease_s=60)
    step("done", lambda: analysis_services.run_complete(run=queued, token=token, model_version="m",
                                                        outcome=_outcome(150.0), comparisons={}, timings={}))
    with clinic_context(history.clinic_a.id):
        other = _claimed_run(history)
    step("failed", lambda: analysis_services.run_fail(run=other, token=uuid.UUID(int=1), kind="bad_input",
                                                      reason="unreadable"))
    with clinic_context(history.clinic_a.id):
        failed = AnalysisRun.objects.get(id=other.id)
        step("retried", lambda: analysis_services.run_retry(run=failed))
    quiet = connection.vendor != "postgresql"  # SQLite (the demo) counts a heartbeat as a change too
    assert steps == [("sent", quiet), ("claimed", True), ("renewed", quiet), ("released", True), ("done", True),
                     ("failed", True), ("retried", True)]


def test_a_stale_copy_of_the_patient_saved_never_lowers_the_version(history):
    with clinic_context(history.clinic_a.id):
        stale = Patient.objects.get(id=history.patient_a.id)
        services.note_create(visit=history.visits[1], author=None, text="after the copy was read")
        current = Patient.objects.get(id=history.patient_a.id).timeline_version
        stale.save()  # writes every column, the old timeline_version too
        assert Patient.objects.get(id=history.patient_a.id).timeline_version > current


def test_the_cached_timeline_shows_what_the_workers_save_at_once(history, clinician):
    url = reverse("patient_detail", args=[history.clinic_a.slug, history.patient_a.id])
    assert 'title="Newer analysis' not in clinician.get(url).content.decode()
    with clinic_context(history.clinic_a.id):
        run = _claimed_run(history)
    assert 'title="Newer analysis running"' in clinician.get(url).content.decode()
    analysis_services.run_complete(run=run, token=uuid.UUID(int=1), model_version="m", outcome=_outcome(123.0),
                                   comparisons={}, timings={})
    page = clinician.get(url).content.decode()
    assert 'title="Newer analysis' not in page and "123<small>/cm²</small>" in page
    with clinic_context(history.clinic_a.id):  # a data fix straight in the table shows too
        PhotoResult.objects.filter(run_id=run.id).update(metrics=_outcome(321.0).metrics)
    assert "321<small>/cm²</small>" in clinician.get(url).content.decode()


def test_a_cached_view_is_still_audited_and_costs_no_query_of_its_own(history, clinician):
    from django.test.utils import CaptureQueriesContext

    url = reverse("patient_detail", args=[history.clinic_a.slug, history.patient_a.id])
    clinician.get(url)
    with CaptureQueriesContext(connection) as queries:
        page = clinician.get(url).content.decode()
    sql = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("SELECT", "INSERT", "UPDATE"))]
    # user, tenant settings, membership, clinic setting, patient, audit row: nothing the cache adds
    assert len(sql) <= 6 and any("patients_auditevent" in s for s in sql), [s[:90] for s in sql]
    assert "Minoxidil" in page
    with operator_context():
        assert AuditEvent.objects.filter(patient=history.patient_a, action="view").count() == 2


def test_the_other_clinics_patient_is_not_found_whatever_is_cached(history, clinician, login):
    url = reverse("patient_detail", args=[history.clinic_a.slug, history.patient_a.id])
    assert clinician.get(url).status_code == 200
    other = login(history.b_clinician)
    assert other.get(url).status_code == 404
    assert other.get(reverse("patient_detail", args=[history.clinic_b.slug, history.patient_a.id])).status_code == 404


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite counts any change of a run")
def test_the_sweeper_sending_a_run_again_leaves_the_cache_alone(history, sent):
    # It re-sends old queued runs (enqueued_at only): the page has nothing new to show.
    with clinic_context(history.clinic_a.id):
        run = _queued_run(history)
        AnalysisRun.objects.filter(id=run.id).update(enqueued_at=timezone.now() - datetime.timedelta(days=1))
    before = _versions(history)[0]
    assert analysis_services.sweep_pending()["sent"] == 1 and sent
    assert _versions(history)[0] == before
