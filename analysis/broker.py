"""The dramatiq broker, built from settings.BROKER_URL.

- ``embedded`` (demo, one small clinic): a StubBroker and one in-process Worker thread, started
  lazily by the first message, so ``runserver`` and ``seed_demo`` analyse without any server.
- ``redis://`` / ``amqp://`` (production): messages go to Redis or RabbitMQ and separate
  ``dramatiq`` worker processes (docs/WORKERS.md) consume them.

The same actors run in both: analysis/tasks.py declares them on whatever ``get_broker()`` gives.
"""

import logging
import os
import socket
import threading

import dramatiq
from django.conf import settings
from django.db import close_old_connections
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

log = logging.getLogger(__name__)

_lock = threading.RLock()
_broker = None
_embedded_worker = None


class DjangoConnections(Middleware):
    """Worker threads hold their own DB connections: drop broken or expired ones around each message."""

    def before_process_message(self, broker, message):
        close_old_connections()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        close_old_connections()

    after_skip_message = after_process_message


def _middleware() -> list:
    # No AgeLimit: an old message is still a photo nobody has analysed; it must not be dropped.
    return [
        TimeLimit(time_limit=settings.ANALYSIS_TIME_LIMIT_S * 1000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=settings.ANALYSIS_MAX_RETRIES, min_backoff=settings.ANALYSIS_MIN_BACKOFF_MS,
                max_backoff=settings.ANALYSIS_MAX_BACKOFF_MS),
        CurrentMessage(),
        DjangoConnections(),
    ]


def build_broker(url: str):
    scheme = url.split(":", 1)[0]
    if scheme == "embedded":
        return StubBroker(middleware=_middleware())
    if scheme in {"redis", "rediss"}:
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, middleware=_middleware(),
                           heartbeat_timeout=settings.BROKER_HEARTBEAT_TIMEOUT_MS,
                           maintenance_chance=settings.BROKER_MAINTENANCE_CHANCE)
    if scheme in {"amqp", "amqps"}:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, middleware=_middleware(), confirm_delivery=True)
    raise ValueError(f"unsupported broker URL {url!r}")


def get_broker():
    """The process's broker, created once from settings (and made dramatiq's global one)."""
    global _broker
    with _lock:
        if _broker is None:
            _broker = build_broker(settings.BROKER_URL)
            dramatiq.set_broker(_broker)
        return _broker


def use_broker(url: str):
    """Switch this process to another broker (tests, the benchmark); actors are re-declared on it."""
    global _broker
    with _lock:
        stop_embedded_worker()
        _broker = build_broker(url)
        dramatiq.set_broker(_broker)
        from analysis import tasks

        for actor in tasks.ACTORS:
            actor.broker = _broker
            _broker.declare_actor(actor)
        return _broker


def is_embedded() -> bool:
    return isinstance(get_broker(), StubBroker)


def ensure_embedded_worker():
    """Start the in-process worker once (embedded mode only); later calls return the same one."""
    global _embedded_worker
    broker = get_broker()
    if not isinstance(broker, StubBroker):
        return None
    with _lock:
        if _embedded_worker is None:
            from analysis.threads import limit_cpu_threads

            limit_cpu_threads()
            _embedded_worker = dramatiq.Worker(broker, worker_threads=max(1, settings.WORKER_THREADS),
                                               worker_timeout=100)
            _embedded_worker.start()
            log.info("started the embedded analysis worker")
        return _embedded_worker


def stop_embedded_worker() -> None:
    global _embedded_worker
    with _lock:
        if _embedded_worker is not None:
            _embedded_worker.stop()
            _embedded_worker = None


def join_embedded(timeout_s: float = 600) -> None:
    """Wait until the in-process worker has finished every message (seed_demo, the sweeper, tests)."""
    broker = get_broker()
    if not isinstance(broker, StubBroker):
        return
    worker = ensure_embedded_worker()
    for queue in [q for q in list(broker.queues) if not q.endswith((".DQ", ".XQ"))]:
        broker.join(queue, timeout=int(timeout_s * 1000), fail_fast=False)
    worker.join()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:120]


def reset_embedded() -> None:
    """Stop the in-process worker and drop queued messages (tests: nothing outlives a test).

    A fresh StubBroker rather than flush_all(): a worker stopped mid-run requeues the messages it
    held, which leaves the old queues' unfinished-task counts too high for join() ever to return,
    and the stopped worker's middleware would stay on the old broker.
    """
    with _lock:
        stop_embedded_worker()
        if isinstance(_broker, StubBroker):
            use_broker("embedded")
