import datetime
from types import SimpleNamespace

import pytest
import redis

from analysis import broker as broker_setup
from tests import factories
from tests.workers.helpers import REDIS_TEST_URL, WorkerProcess


@pytest.fixture
def patient_world(transactional_db):
    """One clinic, one patient with a baseline visit 60 days ago and a follow-up today (committed,
    so worker processes see it)."""
    clinic = factories.make_clinic("wk-clinic", "Worker Clinic")
    other = factories.make_clinic("wk-other", "Other Clinic")
    patient = factories.make_patient(clinic, "W-001", sex_at_birth="female")
    baseline = factories.make_visit(patient, days_ago=60)
    followup = factories.make_visit(patient, days_ago=0)
    return SimpleNamespace(clinic=clinic, other=other, patient=patient, baseline=baseline, followup=followup)


@pytest.fixture
def redis_broker(settings):
    client = redis.Redis.from_url(REDIS_TEST_URL)
    client.flushdb()
    settings.BROKER_URL = REDIS_TEST_URL
    broker = broker_setup.use_broker(REDIS_TEST_URL)
    yield broker
    settings.BROKER_URL = "embedded"
    broker_setup.use_broker("embedded")
    client.flushdb()
    client.close()


@pytest.fixture
def media_root(settings):
    return settings.STORAGES["default"]["OPTIONS"]["location"]


@pytest.fixture
def start_worker(media_root):
    started = []

    def start(**kwargs) -> WorkerProcess:
        worker = WorkerProcess(media_root, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def today():
    return datetime.date.today()


class PrivateRedis:
    """A redis-server of the test's own, so the test can stop and restart "the broker"
    without touching the shared one."""

    def __init__(self, tmp_path):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tmp_path
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self):
        import subprocess
        import time

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def private_redis(settings, tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    settings.BROKER_URL = server.url
    broker_setup.use_broker(server.url)
    yield server
    settings.BROKER_URL = "embedded"
    broker_setup.use_broker("embedded")
    server.stop()


@pytest.fixture
def media_root_of(settings):
    """The stored file of a photo, to damage it as a disk or bucket fault would."""
    from pathlib import Path

    def path(photo):
        return Path(settings.STORAGES["default"]["OPTIONS"]["location"]) / photo.file.name

    return path


@pytest.fixture
def rabbitmq_broker(settings):
    import os

    url = os.environ.get("RABBITMQ_TEST_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    settings.BROKER_URL = url
    broker = broker_setup.use_broker(url)
    for queue in ("analysis", "analysis-gpu"):
        broker.declare_queue(queue)
    broker.flush_all()
    yield broker
    broker.flush_all()
    settings.BROKER_URL = "embedded"
    broker_setup.use_broker("embedded")
