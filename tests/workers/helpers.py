"""Shared pieces of the worker tests: realistic small photos, waiting on the database, and real
``dramatiq`` worker processes against Redis and the test database."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
from django.conf import settings
from django.db import connection

from analysis.engine import phantoms
from analysis.models import AnalysisRun, PhotoComparison, PhotoResult
from clinic.tenancy import operator_context

ROOT = Path(__file__).resolve().parents[2]
REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")
TIME_LIMIT_S = 6


def phantom_jpeg(seed: int, size=(384, 320)) -> bytes:
    image = phantoms.trichoscopy_phantom(seed, size_px=size, mm_per_px=0.006).image
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return encoded.tobytes()


def wait_for(predicate, timeout: float = 30, what: str = "condition"):
    """Poll the database (as the operator) until predicate() is truthy; fail with what was seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with operator_context():
            last = predicate()
        if last:
            return last
        time.sleep(0.1)
    with operator_context():
        runs = list(AnalysisRun.objects.values("id", "status", "attempts", "error_reason", "worker"))
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; runs: {runs}")


def runs_of(photo):
    with operator_context():
        return list(AnalysisRun.objects.filter(photo=photo).order_by("queued_at"))


def result_counts(photo) -> tuple[int, int]:
    with operator_context():
        return (PhotoResult.objects.filter(photo=photo).count(), PhotoComparison.objects.filter(photo=photo).count())


def all_done(photos) -> bool:
    ids = [p.id for p in photos]
    return AnalysisRun.objects.filter(photo_id__in=ids, status=AnalysisRun.Status.DONE).count() == len(ids)


def worker_env(media_root, **extra) -> dict:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "BROKER_URL": REDIS_TEST_URL,
        "MEDIA_ROOT": str(media_root),
        "ANALYSIS_TIME_LIMIT_S": str(TIME_LIMIT_S),
        "ANALYSIS_LEASE_S": "3",
        "ANALYSIS_MIN_BACKOFF_MS": "200",
        "ANALYSIS_MAX_BACKOFF_MS": "2000",
        "ANALYSIS_MAX_RETRIES": "3",
        "BROKER_HEARTBEAT_TIMEOUT_MS": "1500",
        "BROKER_MAINTENANCE_CHANCE": "1000000",
        "ANALYSIS_TORCH_THREADS": "1",
        "ANALYSIS_DEVICE": "cpu",
        "SECRET_KEY": settings.SECRET_KEY,
        "PYTHONPATH": str(ROOT),
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


class WorkerProcess:
    """``dramatiq <module> --processes 1 --threads 1`` in its own process group."""

    def __init__(self, media_root, module="analysis.worker", queues=("analysis",), threads=1, **env):
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", module, "--processes", "1", "--threads", str(threads),
             "--queues", *queues, "--worker-shutdown-timeout", "1000"],
            cwd=ROOT, env=worker_env(media_root, WORKER_THREADS=threads, **env), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if "ready for action" in line:
                self._ready.set()

    def wait_ready(self, timeout: float = 60) -> "WorkerProcess":
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2) and self.proc.poll() is None and time.monotonic() < deadline:
            pass
        if not self._ready.is_set():
            self.stop()
            raise AssertionError("worker did not start:\n" + "\n".join(self.lines[-40:]))
        return self

    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
