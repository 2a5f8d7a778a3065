"""What one analysis message does: claim its runs, analyse them as one batch, save each result.

Called by the actors (analysis/tasks.py) and, synchronously, by tests and seed_demo; it takes
ids only and reaches the database through analysis.services with the clinic set for RLS.
"""

import logging
import threading
import time
import uuid

from django.conf import settings
from django.db import connection
from dramatiq.middleware.time_limit import TimeLimitExceeded

from analysis import selectors, services
from analysis.batching import forward_batch_sizes, share_segmenter
from analysis.models import AnalysisRun
from analysis.pipeline import BadImage, ComparisonOutcome, Settings, get_pipeline
from clinic.tenancy import clinic_context

log = logging.getLogger(__name__)


_share_lock = threading.Lock()


def pipeline_for_worker():
    device = settings.ANALYSIS_DEVICE or None
    pipeline = get_pipeline(device, settings.ANALYSIS_BATCH_SIZE)
    shared = settings.ANALYSIS_SHARED_BATCHING == "on" or (
        settings.ANALYSIS_SHARED_BATCHING == "auto" and pipeline.device.startswith("cuda"))
    if settings.WORKER_THREADS > 1 and shared:
        with _share_lock:  # the worker threads start together; wrap the network once
            share_segmenter(pipeline)
    return pipeline


def process_runs(*, clinic_id: str, run_ids: list[str], final_attempt: bool, worker: str) -> dict:
    """Returns counts; raises services.RunBusy (retry later) or a transient error (retry with backoff)."""
    token = uuid.uuid4()
    claimed, busy = _claim_all(clinic_id, run_ids, token, worker)
    counts = {"claimed": len(claimed), "done": 0, "failed": 0}
    pending = list(claimed)
    try:
        if claimed:
            with LeaseKeeper(clinic_id, [r.id for r in claimed], token):
                _analyse(pending, token, counts)
    except TimeLimitExceeded:
        _fail_all(pending, token, AnalysisRun.ErrorKind.TIMEOUT,
                  f"The analysis took longer than the {settings.ANALYSIS_TIME_LIMIT_S} s limit.", counts)
        return counts
    except Exception as error:
        if final_attempt:
            _fail_all(pending, token, AnalysisRun.ErrorKind.TRANSIENT,
                      f"Failed after {settings.ANALYSIS_MAX_RETRIES + 1} attempts: {error!r}", counts)
            return counts
        for run in pending:
            services.run_release(run=run, token=token, reason=repr(error))
        raise
    if busy:
        raise busy[0]
    return counts


class LeaseKeeper:
    """Holds the lease on the runs claimed for one message while it is processed.

    One heartbeat thread per process renews every held lease every third of ANALYSIS_LEASE_S, over
    one database connection that it closes when nothing is held (a GPU worker handles hundreds of
    messages a second: one connection per message would swamp PostgreSQL). A live worker keeps its
    runs; a killed one loses them within one lease. If renewal ever lapses (database hiccup) another
    worker may take over, and run_complete then refuses this worker's result: one result per run."""

    _held: dict = {}  # token -> (clinic_id, run_ids)
    _lock = threading.Lock()
    _wake = threading.Event()
    _thread = None

    def __init__(self, clinic_id, run_ids, token):
        self.token, self.entry = token, (clinic_id, list(run_ids))

    def __enter__(self):
        cls = type(self)
        with cls._lock:
            cls._held[self.token] = self.entry
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(target=cls._beat, name="lease-keeper", daemon=True)
                cls._thread.start()
        cls._wake.set()
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._held.pop(self.token, None)

    @classmethod
    def _beat(cls):
        while True:
            with cls._lock:
                held = dict(cls._held)
            if not held:
                connection.close()  # nothing to renew: hold no connection while idle
                cls._wake.wait()
                cls._wake.clear()
                continue
            beat_at = time.monotonic()
            while time.monotonic() < beat_at + settings.ANALYSIS_LEASE_S / 3:
                time.sleep(0.05)  # short naps: a changed ANALYSIS_LEASE_S takes effect at once
            for token, (clinic_id, run_ids) in held.items():
                try:
                    services.runs_renew(clinic_id=clinic_id, run_ids=run_ids, token=token,
                                        lease_s=settings.ANALYSIS_LEASE_S)
                except Exception:  # noqa: BLE001 - logged; the next beat tries again on a new connection
                    log.warning("could not renew the lease on runs %s", run_ids, exc_info=True)
                    connection.close()


def _claim_all(clinic_id, run_ids, token, worker):
    claimed, busy = [], []
    lease_s = settings.ANALYSIS_LEASE_S
    for run_id in run_ids:
        try:
            run = services.run_claim(clinic_id=clinic_id, run_id=run_id, token=token, worker=worker, lease_s=lease_s)
        except services.RunBusy as error:
            busy.append(error)
            continue
        if run is not None:
            claimed.append(run)
    busy.sort(key=lambda e: e.until)
    return claimed, busy


def _fail_all(pending, token, kind, reason, counts):
    for run in list(pending):
        if services.run_fail(run=run, token=token, kind=kind, reason=reason):
            counts["failed"] += 1
        pending.remove(run)


def _analyse(pending: list[AnalysisRun], token, counts) -> None:
    pipeline = pipeline_for_worker()
    with pipeline.scope():
        _analyse_in_scope(pipeline, pending, token, counts)


def _analyse_in_scope(pipeline, pending: list[AnalysisRun], token, counts) -> None:
    forward_batch_sizes()  # forget passes of earlier messages on this thread
    started = time.monotonic()
    blobs = [_read(run.photo.file) for run in pending]
    loaded = time.monotonic()
    images = pipeline.decode_many(blobs)
    decoded = time.monotonic()
    good = []
    for run, image in zip(list(pending), images, strict=True):
        if isinstance(image, BadImage):
            services.run_fail(run=run, token=token, kind=AnalysisRun.ErrorKind.BAD_INPUT, reason=str(image))
            counts["failed"] += 1
            pending.remove(run)
        else:
            good.append((run, image))
    if not good:
        return
    outcomes = pipeline.analyze([image for _, image in good], [Settings.from_dict(r.engine_settings) for r, _ in good])
    analysed = time.monotonic()
    per_image = {"load": (loaded - started) / len(blobs), "decode": (decoded - loaded) / len(blobs),
                 "analyse": (analysed - decoded) / len(good), "batch": len(good), "device": pipeline.device}
    shared = forward_batch_sizes()
    if shared:
        per_image["forward_batch"] = max(shared)  # images in the shared GPU pass (other messages' too)
    for (run, image), outcome in zip(good, outcomes, strict=True):
        if isinstance(outcome, BadImage):
            services.run_fail(run=run, token=token, kind=AnalysisRun.ErrorKind.BAD_INPUT, reason=str(outcome))
            counts["failed"] += 1
            pending.remove(run)
            continue
        t0 = time.monotonic()
        comparisons = _compare(pipeline, run, image)
        t1 = time.monotonic()
        timings = per_image | {"compare": t1 - t0, "queue_wait": (run.started_at - run.queued_at).total_seconds()}
        try:
            services.run_complete(run=run, token=token, model_version=pipeline.model_version, outcome=outcome,
                                  comparisons=comparisons, timings=timings)
        except services.LostClaim:
            log.warning("run %s was taken over after its lease ended; this worker's result is dropped", run.id)
        else:
            counts["done"] += 1
        pending.remove(run)


def _compare(pipeline, run, image) -> dict:
    with clinic_context(run.clinic_id):
        targets = selectors.comparison_targets(run.photo)
        stored = selectors.stored_coverage({p.id for p in targets.values()}, pipeline.model_version)
    settings_ = Settings.from_dict(run.engine_settings)
    done: dict = {}
    out = {}
    for against, other in targets.items():
        if other.id not in done:
            done[other.id] = _compare_one(pipeline, other, image, settings_, stored.get(other.id))
        out[against] = (other.id, done[other.id])
    return out


def _compare_one(pipeline, other, image, settings_, coverage_file) -> ComparisonOutcome:
    from analysis.pipeline import decode

    try:
        earlier = decode(_read(other.file))
    except BadImage as error:
        return ComparisonOutcome({"comparable": False, "reasons": [f"the earlier photo cannot be read: {error}"],
                                  "overlap_fraction": 0.0, "changes": {}}, None)
    coverage = None
    if coverage_file:
        try:
            coverage = _read(coverage_file)
        except Exception:  # noqa: BLE001 - only an optimisation: without it the photo is segmented again
            log.warning("stored coverage map of photo %s not read; segmenting it again", other.id, exc_info=True)
    return pipeline.compare(earlier, image, settings_, baseline_coverage_png=coverage)


def _read(field) -> bytes:
    with field.open("rb") as handle:
        return handle.read()
