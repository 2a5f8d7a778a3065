"""State changes of analysis runs: request, send, claim, complete, fail, release, retry, re-analyse, sweep.

Life of a run: queued → running → done | failed. A message carries ids only (clinic id and run
ids) and is sent with ``transaction.on_commit``; a worker claims a run with one conditional
UPDATE and holds it under a lease it renews while it works (ANALYSIS_LEASE_S), so a redelivered or
duplicated message finds it running (and waits for the lease) or finished (and does nothing), and
a killed worker's run is taken over once its lease runs out. Results are written and the run
marked done in one transaction that still checks the claim, and PhotoResult is one-to-one with
its run: a run has at most one result whatever the broker does.
"""

import datetime
import logging
import uuid
from collections import defaultdict

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from analysis.models import AnalysisRun, PhotoComparison, PhotoResult
from clinic.tenancy import clinic_context, operator_context

log = logging.getLogger(__name__)

RESEND_AFTER = datetime.timedelta(minutes=15)


class RunBusy(Exception):
    """Another live worker holds the run; try again when its lease ends."""

    def __init__(self, until: datetime.datetime):
        self.until = until
        super().__init__(f"run is held by another worker until {until.isoformat()}")


class LostClaim(Exception):
    """This worker's lease ended and another worker took the run over: its results are dropped."""


# ---------------------------------------------------------------- request and send


def engine_settings_for(photo) -> dict:
    """What the run will be computed with, recorded at request time (a correction makes a new run)."""
    from analysis.pipeline import Settings
    from patients.models import View

    clinic = photo.clinic
    mm_per_px = photo.mm_per_px_override
    if mm_per_px is None and photo.view == View.TRICHOSCOPY:
        mm_per_px = clinic.trichoscope_mm_per_px
    sex = photo.visit.patient.sex_at_birth
    return Settings(view=photo.view, mm_per_px=mm_per_px, sex=sex if sex in {"male", "female"} else None,
                    vellus_um=clinic.vellus_max_um, terminal_um=clinic.terminal_min_um).as_dict()


def analysis_request(*, photo, reason: str, send: bool = True) -> AnalysisRun:
    """Record that `photo` needs analysing; the queue message is sent once this commits."""
    run = AnalysisRun.objects.create(clinic_id=photo.clinic_id, photo=photo, visit_id=photo.visit_id, reason=reason,
                                     engine_settings=engine_settings_for(photo))
    if send:
        send_on_commit(clinic_id=photo.clinic_id, run_ids=[run.id])
    return run


def send_on_commit(*, clinic_id, run_ids: list) -> None:
    run_ids = [str(r) for r in run_ids]
    transaction.on_commit(lambda: runs_send(clinic_id=str(clinic_id), run_ids=run_ids))


def runs_send(*, clinic_id: str, run_ids: list[str]) -> bool:
    """Send one message for these runs (of one clinic). A broker outage is logged, never raised:
    the upload is already committed and the sweeper sends whatever has no ``enqueued_at``."""
    from analysis import tasks

    try:
        tasks.send(clinic_id=str(clinic_id), run_ids=[str(r) for r in run_ids])
    except Exception:  # noqa: BLE001 - any broker failure; the sweeper is the recovery path
        log.exception("could not queue analysis runs %s; the sweeper will send them", run_ids)
        return False
    with clinic_context(clinic_id):
        AnalysisRun.objects.filter(id__in=run_ids).update(enqueued_at=timezone.now())
    return True


# ---------------------------------------------------------------- the worker's side


def run_claim(*, clinic_id, run_id, token: uuid.UUID, worker: str, lease_s: float) -> AnalysisRun | None:
    """Take the run for this worker, or None when it is finished or gone; RunBusy when another
    live worker holds it. One UPDATE, so two workers can never both win."""
    now = timezone.now()
    with clinic_context(clinic_id):
        claimable = Q(status=AnalysisRun.Status.QUEUED) | Q(status=AnalysisRun.Status.RUNNING,
                                                            lease_expires_at__lt=now)
        won = AnalysisRun.objects.filter(claimable, id=run_id).update(
            status=AnalysisRun.Status.RUNNING, claim_token=token, worker=worker, started_at=now,
            lease_expires_at=now + datetime.timedelta(seconds=lease_s),
            attempts=F("attempts") + 1, error_kind="", finished_at=None,
        )
        run = AnalysisRun.objects.filter(id=run_id).select_related("photo", "visit", "clinic").first()
    if won:
        return run
    if run is not None and run.status == AnalysisRun.Status.RUNNING:
        raise RunBusy(run.lease_expires_at)
    return None


def runs_renew(*, clinic_id, run_ids: list, token, lease_s: float) -> int:
    """Extend this worker's lease on the runs it still holds (its heartbeat); returns how many."""
    with clinic_context(clinic_id):
        return AnalysisRun.objects.filter(id__in=run_ids, status=AnalysisRun.Status.RUNNING, claim_token=token).update(
            lease_expires_at=timezone.now() + datetime.timedelta(seconds=lease_s))


def _held(run: AnalysisRun, token):
    return AnalysisRun.objects.select_for_update().filter(id=run.id, status=AnalysisRun.Status.RUNNING,
                                                          claim_token=token)


def run_complete(*, run: AnalysisRun, token, model_version: str, outcome, comparisons: dict,
                 timings: dict) -> None:
    """Save the result (and comparisons) and mark the run done, in one transaction under the claim.

    `comparisons` maps "baseline"/"previous" to (other_photo_id, ComparisonOutcome)."""
    stored = []
    try:
        with clinic_context(run.clinic_id):
            if not _held(run, token).exists():
                raise LostClaim(str(run.id))
            base = f"clinics/{run.clinic_id}/results/{run.id}"
            result = PhotoResult(clinic_id=run.clinic_id, run=run, photo_id=run.photo_id, metrics=outcome.metrics,
                                 quality_ok=outcome.quality_ok)
            rows = [
                PhotoComparison(clinic_id=run.clinic_id, run=run, photo_id=run.photo_id, against=against,
                                other_photo_id=other_photo_id, data=comparison.data)
                for against, (other_photo_id, comparison) in comparisons.items()
            ]
            # Every file is stored before the first row is written: each insert raises the
            # patient's timeline version (a row lock until commit), and with S3 a lock held
            # across uploads would make workers finishing the same patient's photos queue.
            # Pictures are JPEGs since 26 Nov 2026 (older results keep their .png files, served as such).
            if outcome.heatmap_jpeg:
                result.heatmap.name = _store(f"{base}/heatmap.jpg", outcome.heatmap_jpeg, stored)
            if outcome.mask_png:
                result.mask.name = _store(f"{base}/mask.png", outcome.mask_png, stored)
            for row, (_, comparison) in zip(rows, comparisons.values(), strict=True):
                if comparison.change_map_jpeg:
                    row.change_map.name = _store(f"{base}/change-{row.against}.jpg", comparison.change_map_jpeg,
                                                 stored)
            result.save()
            for row in rows:
                row.save()
            now = timezone.now()
            _held(run, token).update(status=AnalysisRun.Status.DONE, finished_at=now, model_version=model_version,
                                     timings=timings, error_kind="", error_reason="", lease_expires_at=None)
    except BaseException:
        for name in stored:  # nothing half-saved: the files go with the rolled-back rows
            default_storage.delete(name)
        raise


def _store(name: str, data: bytes, stored: list) -> str:
    # One path per run: a re-attempt after a crash overwrites instead of leaving a second copy.
    if default_storage.exists(name):
        default_storage.delete(name)
    saved = default_storage.save(name, ContentFile(data))
    stored.append(saved)
    return saved


def run_fail(*, run: AnalysisRun, token, kind: str, reason: str, timings: dict | None = None) -> bool:
    """Mark a claimed run failed with a reason the clinician sees. False if the claim was lost."""
    with clinic_context(run.clinic_id):
        return bool(_held(run, token).update(
            status=AnalysisRun.Status.FAILED, error_kind=kind, error_reason=reason[:2000],
            finished_at=timezone.now(), lease_expires_at=None, timings=timings or {}))


def run_release(*, run: AnalysisRun, token, reason: str) -> None:
    """Give a claimed run back after a transient error; the broker's retry (with backoff) claims it again."""
    with clinic_context(run.clinic_id):
        _held(run, token).update(status=AnalysisRun.Status.QUEUED, error_reason=f"Retrying after: {reason}"[:2000],
                                 lease_expires_at=None, claim_token=None)


# ---------------------------------------------------------------- clinician and operator actions


def run_retry(*, run: AnalysisRun, reason: str = "retry") -> AnalysisRun:
    """The retry button: a new run of the same photo (the failed one stays for audit)."""
    if run.status != AnalysisRun.Status.FAILED:
        raise ValueError("Only a failed analysis can be retried.")
    return analysis_request(photo=run.photo, reason=reason)


def analysis_reanalyze(*, photos, reason: str) -> list[AnalysisRun]:
    """New runs for these photos (new model, corrected calibration), one message per visit so a
    GPU worker analyses a visit's photos in one batch. Call inside the clinic's transaction."""
    by_visit = defaultdict(list)
    runs = []
    for photo in photos:
        run = analysis_request(photo=photo, reason=reason, send=False)
        by_visit[(run.clinic_id, run.visit_id)].append(run.id)
        runs.append(run)
    for (clinic_id, _visit_id), run_ids in by_visit.items():
        send_on_commit(clinic_id=clinic_id, run_ids=run_ids)
    return runs


def sweep_pending(*, resend_after: datetime.timedelta = RESEND_AFTER, now=None) -> dict[str, int]:
    """Send again every run whose message may be lost: never sent (broker down at upload), sent
    long ago and still queued (broker lost it), or running past its lease (worker died and the
    broker did not redeliver). Safe to run any number of times: claims make extra messages no-ops."""
    now = now or timezone.now()
    with operator_context():
        stale = (
            Q(status=AnalysisRun.Status.QUEUED, enqueued_at__isnull=True)
            | Q(status=AnalysisRun.Status.QUEUED, enqueued_at__lt=now - resend_after)
            | Q(status=AnalysisRun.Status.RUNNING, lease_expires_at__lt=now - resend_after)
        )
        pending = list(AnalysisRun.objects.filter(stale).order_by("queued_at").values_list("clinic_id", "visit_id",
                                                                                            "id"))
    by_visit = defaultdict(list)
    for clinic_id, visit_id, run_id in pending:
        by_visit[(clinic_id, visit_id)].append(run_id)
    sent = sum(len(ids) for (clinic_id, _), ids in by_visit.items() if runs_send(clinic_id=clinic_id, run_ids=ids))
    return {"found": len(pending), "sent": sent, "messages": len(by_visit)}
