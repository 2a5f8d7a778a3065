"""Page timings under concurrent load: the timeline of a 50-visit patient served by gunicorn, and
the visit report's generation time. Prints numbers; it is a benchmark, not a test.

    python manage.py benchmark_pages --visits 50 --clients 10 --requests 600

It creates (once) a clinic "bench" with a clinician and a patient with saved results for every
photo (the same builders the workspace tests use), starts gunicorn on a free port, warms it up,
then runs N client threads on keep-alive connections and reports p50/p95/p99 and throughput.
"""

import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.management.base import BaseCommand

from clinic.models import Clinic, Membership, Role
from clinic.tenancy import operator_context
from patients import services
from patients.models import Patient, Visit

SLUG = "bench"


class Command(BaseCommand):
    help = "Time the patient timeline under concurrent load (gunicorn) and the visit report generation."

    def add_arguments(self, parser):
        parser.add_argument("--visits", type=int, default=50)
        parser.add_argument("--clients", type=int, default=10)
        parser.add_argument("--requests", type=int, default=600, help="Measured requests in total.")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes.")
        parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread when > 1).")
        parser.add_argument("--reports", type=int, default=5)

    def handle(self, *args, visits, clients, requests, workers, threads, reports, **options):
        user, patient = self._world(visits)
        cookie = self._session(user)
        engine = settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]
        self.stdout.write(f"patient with {visits} visits × 5 photos; database {engine}")
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "clinic.wsgi", "-w", str(workers), "--threads", str(threads),
             "-b", f"127.0.0.1:{port}",
             "--log-level", "warning", "--error-logfile", "-", "--keep-alive", "30"],
            env={**os.environ}, start_new_session=True)
        try:
            _wait_for(port)
            path = f"/c/{SLUG}/patients/{patient.id}/"
            _check(port, path, cookie)
            _load(port, path, cookie, clients=clients, total=max(clients * 3, 30))  # warm-up
            cpu_before, db_before, me_before = _cpu_seconds(server.pid), _postgres_cpu_seconds(), _own_cpu_seconds()
            busy_before = _machine_busy_seconds()
            times, wall = _load(port, path, cookie, clients=clients, total=requests)
            cpu = _cpu_seconds(server.pid) - cpu_before
            db_cpu, client_cpu = _postgres_cpu_seconds() - db_before, _own_cpu_seconds() - me_before
            others = _machine_busy_seconds() - busy_before - cpu - db_cpu - client_cpu
            self._print(f"timeline ({visits} visits, {clients} clients, {workers} workers × {threads} threads)",
                        times, wall)
            # Wall-clock numbers depend on what else runs on the machine; CPU per request does not.
            self.stdout.write(f"gunicorn CPU per request: {cpu / len(times) * 1000:.1f} ms (web processes only, "
                              f"database excluded); load average now {os.getloadavg()[0]:.1f} on "
                              f"{os.cpu_count()} cores")
            self.stdout.write(f"PostgreSQL CPU per request: {db_cpu / len(times) * 1000:.1f} ms (every postgres "
                              f"process on the machine); this client: {client_cpu / len(times) * 1000:.1f} ms")
            # A shared machine: the wall-clock figures mean little if something else ran meanwhile.
            self.stdout.write(f"everything else on the machine during the run: {max(others, 0) / wall * 100:.0f}% "
                              f"of one core")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        self._report(patient, reports)

    def _world(self, n_visits):
        from tests.workspace import builders  # the saved-result builders shared with the tests

        User = get_user_model()
        with operator_context():
            clinic = Clinic.objects.filter(slug=SLUG).first() or Clinic.objects.create(
                slug=SLUG, name="Benchmark Clinic", report_header="Benchmark Clinic · 1 Load Street")
            user = User.objects.filter(username="bench-clinician").first() or User.objects.create_user(
                "bench-clinician", first_name="Bea", last_name="Bench")
            Membership.objects.get_or_create(user=user, clinic=clinic, defaults={"role": Role.CLINICIAN})
            external_id = f"BENCH-{n_visits}"
            patient = Patient.objects.filter(clinic=clinic, external_id=external_id).first()
            if patient is not None:
                return user, patient
            patient = services.patient_create(clinic=clinic, external_id=external_id, first_name="Bench",
                                              last_name=f"Patient {n_visits}", sex_at_birth="male")
        self.stdout.write(f"building {n_visits} analysed visits…")
        builders.build_history(patient, visits=n_visits, with_files=True, months_apart=1)
        return user, patient

    def _session(self, user) -> str:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"

    def _report(self, patient, count):
        from patients.report import visit_report_pdf

        with operator_context():
            visit = Visit.objects.filter(patient=patient).select_related("patient").order_by("-date").first()
            clinic = Clinic.objects.get(id=patient.clinic_id)
            times, size, n_visits = [], 0, patient.visits.count()
            for _ in range(count):
                started = time.perf_counter()
                size = len(visit_report_pdf(visit=visit, clinic=clinic, author="Bea Bench"))
                times.append(time.perf_counter() - started)
        self.stdout.write(f"report: median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
                          f"over {count} runs ({size / 1024:.0f} KiB, {n_visits} visits in the trend)")

    def _print(self, name, times, wall):
        times = sorted(times)

        def pct(p):
            return times[min(len(times) - 1, int(len(times) * p))] * 1000

        self.stdout.write(f"{name}: {len(times)} requests in {wall:.1f} s = {len(times) / wall:.0f} req/s; "
                          f"p50 {pct(0.50):.0f} ms, p95 {pct(0.95):.0f} ms, p99 {pct(0.99):.0f} ms, "
                          f"max {times[-1] * 1000:.0f} ms")


def _processes():
    """(pid, name, the stat fields after the name) of every readable process, from /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                name, rest = handle.read().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, IndexError, ValueError):
            continue
        yield int(entry), name, rest.split()


def _cpu_seconds(master_pid: int) -> float:
    """User + system CPU of gunicorn's worker processes (children of the master), from /proc."""
    total = sum(
        int(fields[11]) + int(fields[12])  # utime, stime
        for pid, _, fields in _processes()
        if int(fields[1]) == master_pid or pid == master_pid  # fields[1] is the parent pid
    )
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_seconds() -> float:
    """User + system CPU of every process named postgres, with that of its ended children (a backend
    per connection ends with it): a local server's, and others' queries count too."""
    total = sum(
        sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        for _, name, fields in _processes()
        if name in {"postgres", "postmaster"}
    )
    return total / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idle and I/O wait, from /proc/stat."""
    with open("/proc/stat") as handle:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, handle.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def _get(conn, path, cookie):
    conn.request("GET", path, headers={"Cookie": cookie})
    response = conn.getresponse()
    body = response.read()
    return response.status, body


def _check(port, path, cookie):
    status, body = _get(http.client.HTTPConnection("127.0.0.1", port, timeout=30), path, cookie)
    if status != 200 or b"tl-visit" not in body:
        raise RuntimeError(f"timeline answered {status}; is the session valid?")


def _load(port, path, cookie, *, clients, total):
    times, lock = [], threading.Lock()
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]

    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for _ in range(n):
            started = time.perf_counter()
            status, _ = _get(conn, path, cookie)
            mine.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"status {status}")
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in per_client]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times, time.perf_counter() - started
