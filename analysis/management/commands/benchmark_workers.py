"""Push N photos through the real upload path, broker and workers; print photos per minute and
the median and 95th-percentile time from upload (commit) to saved result.

    BROKER_URL=redis://127.0.0.1:6379/14 python manage.py benchmark_workers --photos 40 --workers 1
    BROKER_URL=redis://... python manage.py benchmark_workers --photos 2000 --size 1280x1024 \\
        --device cuda --queue analysis-gpu --threads 8 --batch-size 16          # on a GPU machine

With --workers K it starts K ``dramatiq analysis.worker`` processes itself (and waits until they
are ready before the clock starts); with --workers 0 it uses workers already running. With the
embedded broker it measures the in-process worker. It makes its own clinic and deletes it after.
"""

import datetime
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid

import cv2
import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from analysis import broker as broker_setup
from analysis.models import AnalysisRun, PhotoComparison, PhotoResult
from clinic.models import Clinic
from clinic.tenancy import clinic_context, operator_context
from patients import services as patient_services
from patients.models import Patient, Photo

FINISHED = (AnalysisRun.Status.DONE, AnalysisRun.Status.FAILED)


class Command(BaseCommand):
    help = "Benchmark analysis end to end through the broker and workers (photos/min, p50/p95 upload→result)."

    def add_arguments(self, parser):
        parser.add_argument("--photos", type=int, default=20)
        parser.add_argument("--visit-size", type=int, default=5, help="Photos per visit (one message each upload).")
        parser.add_argument("--size", default="1280x1024", help="WxH of the synthetic trichoscopy JPEGs.")
        parser.add_argument("--workers", type=int, default=1, help="Worker processes to start (0: use running ones).")
        parser.add_argument("--threads", type=int, default=1, help="Threads per worker process.")
        parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (worker processes).")
        parser.add_argument("--queue", default=None, help="analysis or analysis-gpu (default: ANALYSIS_QUEUE).")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--timeout", type=float, default=900)
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark clinic and its files.")
        parser.add_argument("--baseline", action="store_true",
                            help="First upload and analyse an untimed baseline visit, so every timed photo is "
                                 "a follow-up of the same site compared with it (the clinic's usual case).")

    def handle(self, *args, **opts):
        width, height = (int(v) for v in opts["size"].lower().split("x"))
        queue = opts["queue"] or settings.ANALYSIS_QUEUE
        if opts["queue"]:
            settings.ANALYSIS_QUEUE = queue  # this process's uploads are sent there
        embedded = broker_setup.is_embedded()
        where = "embedded (in-process worker)" if embedded else settings.BROKER_URL
        self.stdout.write(f"broker {where}, queue {queue}, {opts['photos']} photos {width}x{height}, "
                          f"visits of {opts['visit_size']}")
        if opts["baseline"]:
            blobs = _follow_up_photos(opts["photos"], opts["visit_size"], width, height)
        else:
            blobs = _photos(opts["photos"], width, height)
        workers = [] if embedded else [self._start_worker(opts, queue) for _ in range(opts["workers"])]
        clinic = None
        try:
            for worker in workers:
                worker.wait_ready()
            clinic = self._clinic()
            if opts["baseline"]:
                self._wait(self._upload(clinic, blobs[:opts["visit_size"]], opts["visit_size"]), opts["timeout"])
                blobs = blobs[opts["visit_size"]:]
            cpu_before = sum(w.cpu_seconds() for w in workers)
            committed = self._upload(clinic, blobs, opts["visit_size"])
            runs = self._wait(committed, opts["timeout"])
            self._report(runs, committed, opts, queue)
            if workers:
                cpu = (sum(w.cpu_seconds() for w in workers) - cpu_before) / len(runs)
                self.stdout.write(f"worker CPU time:     {cpu:.2f} s per photo (user+system, all threads; on a loaded "
                                  "machine this, not wall time, shows the work done)")
        finally:
            for worker in workers:
                worker.stop()
            if clinic is not None and not opts["keep"]:
                _delete_clinic(clinic)

    def _start_worker(self, opts, queue):
        env = {**os.environ, "WORKER_PROCESSES": str(max(1, opts["workers"])), "WORKER_THREADS": str(opts["threads"]),
               "ANALYSIS_DEVICE": opts["device"], "BROKER_URL": settings.BROKER_URL}
        if opts["batch_size"]:
            env["ANALYSIS_BATCH_SIZE"] = str(opts["batch_size"])
        return _Worker(["--processes", "1", "--threads", str(opts["threads"]), "--queues", queue], env)

    def _clinic(self):
        with operator_context():
            clinic = Clinic.objects.create(slug=f"bench-{uuid.uuid4().hex[:8]}", name="Benchmark clinic",
                                           trichoscope_mm_per_px=0.006)
        with clinic_context(clinic.id):
            patient_services.patient_create(clinic=clinic, external_id="BENCH", first_name="Bench",
                                            last_name="Mark", sex_at_birth="male")
        return clinic

    def _upload(self, clinic, blobs, visit_size):
        committed = {}
        with clinic_context(clinic.id):
            patient = Patient.objects.get(clinic=clinic, external_id="BENCH")
            visits = [patient_services.visit_create(patient=patient, visit_date=datetime.date.today())
                      for _ in range(0, len(blobs), visit_size)]
        self.stdout.write(f"uploading {len(blobs)} ...")
        for i, blob in enumerate(blobs):
            with clinic_context(clinic.id):  # one upload = one committed transaction, as from the web
                photo = patient_services.photo_upload(visit=visits[i // visit_size], data=blob, view="trichoscopy",
                                                      uploaded_by=None, site_label=f"site {i % visit_size}")
            committed[photo.id] = time.time()  # on_commit has sent the message by now
        return committed

    def _wait(self, committed, timeout):
        deadline = time.monotonic() + timeout
        ids = list(committed)
        while True:
            with operator_context():
                runs = list(AnalysisRun.objects.filter(photo_id__in=ids))
            finished = [r for r in runs if r.status in FINISHED]
            if len(finished) == len(ids):
                return runs
            if time.monotonic() > deadline:
                raise CommandError(f"timed out: {len(finished)} of {len(ids)} analysed")
            time.sleep(0.1)

    def _report(self, runs, committed, opts, queue):
        latency = sorted(r.finished_at.timestamp() - committed[r.photo_id] for r in runs)
        first, last = min(committed.values()), max(r.finished_at.timestamp() for r in runs)
        failed = [r for r in runs if r.status == AnalysisRun.Status.FAILED]
        by_visit: dict = {}
        for r in runs:
            by_visit.setdefault(r.visit_id, []).append(r)
        visit_s = [max(r.finished_at.timestamp() for r in rs) - min(committed[r.photo_id] for r in rs)
                   for rs in by_visit.values()]
        stage = {k: statistics.median(r.timings.get(k, 0) for r in runs if r.timings) for k in
                 ("load", "decode", "analyse", "compare")}
        device = next((r.timings.get("device") for r in runs if r.timings), "?")
        batch = max((r.timings.get("batch", 1) for r in runs if r.timings), default=1)
        forward = [r.timings["forward_batch"] for r in runs if r.timings and "forward_batch" in r.timings]
        shared = (f", shared forward passes of median {statistics.median(forward):.0f} / max {max(forward)} images"
                  if forward else "")
        rate = len(runs) / (last - first)
        lines = [
            f"photos:              {len(runs)} ({len(failed)} failed)",
            f"throughput:          {rate * 60:.1f} photos/min ({rate:.2f}/s)",
            f"upload→result:       median {_q(latency, 0.5):.2f} s, p95 {_q(latency, 0.95):.2f} s, "
            f"max {latency[-1]:.2f} s",
            f"visit of {opts['visit_size']}:          median {statistics.median(visit_s):.2f} s "
            "first upload → last result",
            f"per photo (median):  load {stage['load'] * 1000:.0f} ms, decode {stage['decode'] * 1000:.0f} ms, "
            f"analyse {stage['analyse'] * 1000:.0f} ms, compare {stage['compare'] * 1000:.0f} ms",
            f"workers:             {opts['workers']} × {opts['threads']} thread(s) on {device}, queue {queue}, "
            f"largest message batch {batch}{shared}, model {runs[0].model_version or '?'}",
        ]
        self.stdout.write("\n".join(lines))
        if failed:
            self.stderr.write(f"first failure: {failed[0].error_reason}")


def _q(values, q):
    return float(np.quantile(values, q))


def _photos(n, width, height) -> list[bytes]:
    """n distinct JPEGs of synthetic trichoscopy fields (a few phantoms, varied so no two are equal)."""
    from analysis.engine import phantoms

    bases = [phantoms.trichoscopy_phantom(seed, size_px=(width, height), mm_per_px=0.006).image
             for seed in range(min(n, 4))]
    out = []
    for i in range(n):
        image = bases[i % len(bases)]
        variant = [image, image[:, ::-1], image[::-1], image[::-1, ::-1]][(i // len(bases)) % 4].copy()
        variant[0, 0] = (i * 37 % 256, i // 256 % 256, 7)  # a different pixel: a different file per photo
        ok, encoded = cv2.imencode(".jpg", variant, [cv2.IMWRITE_JPEG_QUALITY, 92])
        out.append(encoded.tobytes())
    return out


def _follow_up_photos(n, visit_size, width, height) -> list[bytes]:
    """A baseline visit (one scalp per site) then n photos of the same sites re-imaged later (10% of
    the hairs lost, new light, moved), so that every comparison registers and measures change, as a
    clinic's follow-ups do. Photos of one site differ by one pixel: a different file each."""
    from analysis.engine import phantoms

    bases = [phantoms.trichoscopy_phantom(site, size_px=(width, height), mm_per_px=0.006) for site in range(visit_size)]
    later = [phantoms.follow_up(base, 1000 + site, change_fraction=-0.1, strength=0.5).image
             for site, base in enumerate(bases)]
    out = [_jpeg(base.image) for base in bases]
    for i in range(n):
        variant = later[i % visit_size].copy()
        variant[0, 0] = (i * 37 % 256, i // 256 % 256, 9)
        out.append(_jpeg(variant))
    return out


def _jpeg(image) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return encoded.tobytes()


def _delete_clinic(clinic):
    with operator_context():
        names = [p.file.name for p in Photo.objects.filter(clinic=clinic)]
        for result in PhotoResult.objects.filter(clinic=clinic):
            names += [result.heatmap.name, result.mask.name]
        names += [c.change_map.name for c in PhotoComparison.objects.filter(clinic=clinic)]
        clinic.delete()
    for name in filter(None, names):
        default_storage.delete(name)


class _Worker:
    def __init__(self, args, env):
        self.ready = threading.Event()
        self.proc = subprocess.Popen([sys.executable, "-m", "dramatiq", "analysis.worker", *args], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.tail: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.tail = (self.tail + [line.rstrip()])[-30:]
            if "ready for action" in line:
                self.ready.set()

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise CommandError("worker did not start:\n" + "\n".join(self.tail))

    def cpu_seconds(self) -> float:
        """user+system CPU seconds of the worker's process tree so far (Linux /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        total, todo = 0.0, [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
                for task in os.listdir(f"/proc/{pid}/task"):
                    todo += [int(c) for c in open(f"/proc/{pid}/task/{task}/children").read().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
        return total

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
