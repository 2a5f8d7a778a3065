"""Dramatiq actors: thin. They take ids only and hand over to analysis.processing.

Two actors with one body: ``analyse_runs`` on the ``analysis`` queue (CPU workers) and
``analyse_runs_gpu`` on ``analysis-gpu`` (GPU workers, which batch). settings.ANALYSIS_QUEUE
chooses where the web sends; a reanalysis or benchmark may pick a queue explicitly.
"""

import dramatiq
from django.conf import settings
from dramatiq.middleware import CurrentMessage

from analysis import broker as broker_setup
from analysis import processing, services
from analysis.pipeline import BadImage

QUEUES = ("analysis", "analysis-gpu")


def _analyse(clinic_id: str, run_ids: list[str]) -> None:
    message = CurrentMessage.get_current_message()
    retries = message.options.get("retries", 0) if message is not None else 0
    try:
        processing.process_runs(clinic_id=clinic_id, run_ids=run_ids, worker=broker_setup.worker_name(),
                                final_attempt=retries >= settings.ANALYSIS_MAX_RETRIES)
    except services.RunBusy as busy:
        # A live worker holds the run (or a killed one's lease has not ended yet): come back then.
        from django.utils import timezone

        wait_ms = int((busy.until - timezone.now()).total_seconds() * 1000) + 500
        raise dramatiq.Retry(str(busy), delay=max(wait_ms, 500)) from None


_options = {"max_retries": settings.ANALYSIS_MAX_RETRIES, "throws": (BadImage,),
            "broker": broker_setup.get_broker()}
analyse_runs = dramatiq.actor(_analyse, actor_name="analyse_runs", queue_name="analysis", **_options)
analyse_runs_gpu = dramatiq.actor(_analyse, actor_name="analyse_runs_gpu", queue_name="analysis-gpu", **_options)
ACTORS = (analyse_runs, analyse_runs_gpu)


def send(*, clinic_id: str, run_ids: list[str], queue: str | None = None) -> None:
    actor = analyse_runs_gpu if (queue or settings.ANALYSIS_QUEUE) == "analysis-gpu" else analyse_runs
    actor.send(str(clinic_id), [str(r) for r in run_ids])
    broker_setup.ensure_embedded_worker()
