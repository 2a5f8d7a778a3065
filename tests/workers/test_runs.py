"""The run state machine (analysis.services + analysis.processing), called directly: claims,
results, errors, retries, re-analysis and the sweeper."""

import datetime

import pytest
from django.utils import timezone
from dramatiq.middleware.time_limit import TimeLimitExceeded

from analysis import pipeline, processing, services
from analysis.models import AnalysisRun, PhotoComparison, PhotoResult
from clinic.tenancy import clinic_context, operator_context
from tests import factories
from tests.workers.helpers import phantom_jpeg


@pytest.fixture
def visits(db):
    clinic = factories.make_clinic("runs-clinic")
    patient = factories.make_patient(clinic, "R-001", sex_at_birth="male")
    return SimpleVisits(clinic, patient, factories.make_visit(patient, days_ago=90),
                        factories.make_visit(patient, days_ago=30), factories.make_visit(patient, days_ago=0))


class SimpleVisits:
    def __init__(self, clinic, patient, *visits):
        self.clinic, self.patient, self.visits = clinic, patient, visits


@pytest.fixture
def sent(monkeypatch):
    """Messages the code sends, instead of a broker."""
    messages = []
    monkeypatch.setattr("analysis.tasks.send", lambda **kw: messages.append(kw))
    return messages


def photo_in(visit, seed, view="trichoscopy", data=None):
    return factories.make_photo(visit, view=view, data=data or phantom_jpeg(seed), site_label="vertex")


def run_of(photo) -> AnalysisRun:
    with operator_context():
        return AnalysisRun.objects.filter(photo_id=getattr(photo, "id", photo)).latest("queued_at")


def process(run, final=False):
    return processing.process_runs(clinic_id=str(run.clinic_id), run_ids=[str(run.id)], final_attempt=final,
                                   worker="test:1:main")


def test_it_records_the_settings_a_run_will_use(visits):
    photo = photo_in(visits.visits[0], 1)
    run = run_of(photo)
    assert run.status == "queued" and run.enqueued_at is None  # nothing is sent before commit
    assert run.engine_settings == {"view": "trichoscopy", "mm_per_px": visits.clinic.trichoscope_mm_per_px,
                                   "sex": "male", "vellus_um": 40.0, "terminal_um": 60.0}


def test_upload_sends_ids_only_after_commit(visits, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        photo = photo_in(visits.visits[0], 1)
        assert sent == []
    run = run_of(photo)
    assert sent == [{"clinic_id": str(visits.clinic.id), "run_ids": [str(run.id)]}]
    assert run.enqueued_at is not None


def test_a_processed_run_has_one_result_and_comparisons_with_baseline_and_previous(visits):
    base, middle, last = (photo_in(v, seed) for v, seed in zip(visits.visits, (1, 2, 3), strict=True))
    for photo in (base, middle, last):
        assert process(run_of(photo)) == {"claimed": 1, "done": 1, "failed": 0}

    run = run_of(last)
    assert run.status == "done" and run.attempts == 1 and run.model_version
    assert set(run.timings) >= {"load", "decode", "analyse", "compare", "queue_wait"}
    with operator_context():
        result = PhotoResult.objects.get(run=run)
        comparisons = {c.against: c for c in PhotoComparison.objects.filter(run=run)}
    assert result.metrics["scalp_visibility"] is not None
    assert result.heatmap.name == f"clinics/{visits.clinic.id}/results/{run.id}/heatmap.jpg"
    with result.heatmap.open("rb") as picture, result.mask.open("rb") as coverage:
        assert picture.read(3) == b"\xff\xd8\xff" and coverage.read(4) == b"\x89PNG"  # the map stays lossless
    assert comparisons["baseline"].other_photo_id == base.id
    assert comparisons["previous"].other_photo_id == middle.id
    assert "comparable" in comparisons["baseline"].data and "changes" in comparisons["previous"].data
    # The compare view overlays the stored photos with the follow-up -> baseline homography (None
    # here: these photos are of different scalps, so they do not register).
    assert "homography" in comparisons["baseline"].data


def test_a_duplicate_message_does_nothing(visits):
    run = run_of(photo_in(visits.visits[0], 1))
    process(run)
    assert process(run) == {"claimed": 0, "done": 0, "failed": 0}
    with operator_context():
        assert PhotoResult.objects.filter(run=run).count() == 1
    assert run_of(run.photo_id).attempts == 1


def test_a_run_held_by_a_live_worker_is_busy_until_its_lease_ends(visits):
    run = run_of(photo_in(visits.visits[0], 1))
    first = services.run_claim(clinic_id=run.clinic_id, run_id=run.id, token="a" * 32, worker="w1", lease_s=60)
    with pytest.raises(services.RunBusy) as busy:
        services.run_claim(clinic_id=run.clinic_id, run_id=run.id, token="b" * 32, worker="w2", lease_s=60)
    assert busy.value.until > timezone.now() + datetime.timedelta(seconds=59)

    with clinic_context(run.clinic_id):  # the first worker died: its lease runs out
        AnalysisRun.objects.filter(id=run.id).update(lease_expires_at=timezone.now() - datetime.timedelta(seconds=1))
    second = services.run_claim(clinic_id=run.clinic_id, run_id=run.id, token="b" * 32, worker="w2", lease_s=60)
    assert second.attempts == 2 and second.worker == "w2"

    outcome = pipeline.get_pipeline("cpu").analyze([pipeline.decode(phantom_jpeg(1))],
                                                   [pipeline.Settings.from_dict(run.engine_settings)])[0]
    with pytest.raises(services.LostClaim):  # the first worker comes back: its result is refused
        services.run_complete(run=first, token="a" * 32, model_version="m", outcome=outcome, comparisons={},
                              timings={})
    with operator_context():
        assert not PhotoResult.objects.filter(run=run).exists()


def test_a_bad_image_in_a_batch_fails_alone_and_at_once(visits, media_root_of):
    photos = [photo_in(visits.visits[0], seed, view=view) for seed, view in ((1, "crown"), (2, "hairline"))]
    media_root_of(photos[1]).write_bytes(b"\xff\xd8\xff damaged")
    runs = [run_of(p) for p in photos]
    counts = processing.process_runs(clinic_id=str(visits.clinic.id), run_ids=[str(r.id) for r in runs],
                                     final_attempt=False, worker="test:1:main")
    assert counts == {"claimed": 2, "done": 1, "failed": 1}
    failed = run_of(photos[1])
    assert failed.status == "failed" and failed.error_kind == "bad_input" and failed.attempts == 1
    assert "not a readable image" in failed.error_reason


def test_a_transient_error_gives_the_run_back_and_the_last_attempt_fails_it(visits, monkeypatch):
    run = run_of(photo_in(visits.visits[0], 1))

    def storage_down(*args, **kwargs):
        raise OSError("bucket unreachable")

    monkeypatch.setattr(processing, "_read", storage_down)
    with pytest.raises(OSError):
        process(run)
    again = run_of(run.photo_id)
    assert again.status == "queued" and "bucket unreachable" in again.error_reason and again.claim_token is None

    assert process(again, final=True)["failed"] == 1
    failed = run_of(run.photo_id)
    assert failed.status == "failed" and failed.error_kind == "transient" and failed.attempts == 2
    assert "bucket unreachable" in failed.error_reason


def test_a_run_over_its_time_limit_fails_with_that_reason(visits, monkeypatch):
    run = run_of(photo_in(visits.visits[0], 1))

    def too_slow(*args, **kwargs):
        raise TimeLimitExceeded()

    monkeypatch.setattr(processing, "_compare", too_slow)
    assert process(run)["failed"] == 1
    failed = run_of(run.photo_id)
    assert failed.error_kind == "timeout" and "longer than" in failed.error_reason
    with operator_context():
        assert not PhotoResult.objects.filter(run=run).exists(), "no half-saved result"


def test_retry_makes_a_new_run_and_keeps_the_failed_one(visits, sent, django_capture_on_commit_callbacks):
    run = run_of(photo_in(visits.visits[0], 1))
    with clinic_context(run.clinic_id):
        AnalysisRun.objects.filter(id=run.id).update(status="failed", error_kind="transient")
        run.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True):
            new = services.run_retry(run=run)
    assert new.id != run.id and new.reason == "retry" and new.status == "queued"
    assert sent[-1]["run_ids"] == [str(new.id)]
    with operator_context():
        assert AnalysisRun.objects.filter(photo_id=run.photo_id).count() == 2
    with pytest.raises(ValueError):
        services.run_retry(run=new)


def test_reanalysis_sends_one_message_per_visit(visits, sent, django_capture_on_commit_callbacks):
    photos = [photo_in(v, seed, view=view) for v in visits.visits[:2] for seed, view in ((1, "crown"), (2, "hairline"))]
    with clinic_context(visits.clinic.id), django_capture_on_commit_callbacks(execute=True):
        runs = services.analysis_reanalyze(photos=photos, reason="model v2")
    assert len(runs) == 4 and all(r.reason == "model v2" for r in runs)
    assert sorted(len(m["run_ids"]) for m in sent) == [2, 2]


def test_the_sweeper_resends_only_runs_whose_message_may_be_lost(visits, sent):
    now = timezone.now()
    never_sent, sent_long_ago, sent_now, dead_worker, live_worker, done = (
        run_of(photo_in(visits.visits[0], seed, view=view)) for seed, view in enumerate(
            ["crown", "hairline", "part_line", "temple_left", "temple_right", "trichoscopy"]))
    with operator_context():
        AnalysisRun.objects.filter(id=sent_long_ago.id).update(enqueued_at=now - datetime.timedelta(hours=1))
        AnalysisRun.objects.filter(id=sent_now.id).update(enqueued_at=now)
        AnalysisRun.objects.filter(id=dead_worker.id).update(status="running", enqueued_at=now,
                                                             lease_expires_at=now - datetime.timedelta(hours=1))
        AnalysisRun.objects.filter(id=live_worker.id).update(status="running", enqueued_at=now,
                                                             lease_expires_at=now + datetime.timedelta(minutes=1))
        AnalysisRun.objects.filter(id=done.id).update(status="done", enqueued_at=now)

    assert services.sweep_pending() == {"found": 3, "sent": 3, "messages": 1}
    assert set(sent[0]["run_ids"]) == {str(never_sent.id), str(sent_long_ago.id), str(dead_worker.id)}
    assert services.sweep_pending()["found"] == 1, "resent runs count as sent now; the dead worker's stays due"


class CountingSegmenter:
    def __init__(self, inner):
        self.inner, self.images = inner, []
        self.device, self.model_version = inner.device, inner.model_version

    def predict(self, images, **kwargs):
        self.images.append(len(images))
        return self.inner.predict(images, **kwargs)


def test_a_comparison_reuses_the_earlier_photos_stored_coverage_map(visits, monkeypatch):
    base = photo_in(visits.visits[0], 1)
    process(run_of(base))
    with operator_context():
        stored = PhotoResult.objects.get(photo=base).mask
    coverage = pipeline.decode_coverage(stored.open("rb").read())
    assert coverage is not None and coverage.shape == (320, 384) and 0 < coverage.max() <= 1

    counting = CountingSegmenter(processing.pipeline_for_worker().segmenter.inner)
    monkeypatch.setattr(processing.pipeline_for_worker().segmenter, "inner", counting)
    process(run_of(photo_in(visits.visits[1], 2)))
    assert counting.images == [1], "only the follow-up went through the network; the baseline's map was reused"


def test_a_map_from_another_model_version_is_not_reused(visits, monkeypatch):
    base = photo_in(visits.visits[0], 1)
    process(run_of(base))
    with operator_context():
        AnalysisRun.objects.filter(photo=base).update(model_version="older-model")
    counting = CountingSegmenter(processing.pipeline_for_worker().segmenter.inner)
    monkeypatch.setattr(processing.pipeline_for_worker().segmenter, "inner", counting)
    process(run_of(photo_in(visits.visits[1], 2)))
    assert counting.images == [1, 1], "the follow-up, then the baseline segmented again"


def test_a_working_worker_keeps_renewing_its_lease(transactional_db, sent, settings, monkeypatch):
    settings.ANALYSIS_LEASE_S = 0.6  # `sent`: no embedded worker races this test for the run
    clinic = factories.make_clinic("lease-clinic")
    visit = factories.make_visit(factories.make_patient(clinic, "L-1"))
    run = run_of(photo_in(visit, 1))
    leases = []
    analyse = processing._analyse

    def slow_analyse(pending, token, counts):
        with operator_context():
            leases.append(AnalysisRun.objects.get(id=run.id).lease_expires_at)
        # Longer than a lease: without renewal the run would be claimable by another worker now.
        deadline = timezone.now() + datetime.timedelta(seconds=1.5)
        while timezone.now() < deadline:
            with operator_context():
                current = AnalysisRun.objects.get(id=run.id).lease_expires_at
            assert current > timezone.now(), "the lease lapsed while the worker was still working"
        leases.append(current)
        return analyse(pending, token, counts)

    monkeypatch.setattr(processing, "_analyse", slow_analyse)
    assert process(run)["done"] == 1
    assert leases[1] > leases[0] + datetime.timedelta(seconds=0.5)


def test_one_heartbeat_thread_serves_every_message_of_a_process(visits):
    process(run_of(photo_in(visits.visits[0], 1)))
    first = processing.LeaseKeeper._thread
    process(run_of(photo_in(visits.visits[1], 2)))
    assert first is not None and first.is_alive() and processing.LeaseKeeper._thread is first
    assert processing.LeaseKeeper._held == {}, "a finished message holds no lease"
