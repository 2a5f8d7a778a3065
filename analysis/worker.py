"""Entry module for ``dramatiq`` worker processes (docs/WORKERS.md):

    dramatiq analysis.worker --processes 1 --threads 1 --queues analysis        # CPU worker
    dramatiq analysis.worker --processes 1 --threads 8 --queues analysis-gpu    # GPU worker

or ``python manage.py analysis_worker`` which fills in these flags and the thread budget.
It sets Django up, limits CPU threads so processes × threads do not oversubscribe the cores
(oversubscription costs 10x on these machines), and loads the network once per process.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from analysis import threads  # noqa: E402

threads.limit_cpu_threads()

from analysis import tasks  # noqa: E402,F401  (declares the actors on the broker)
from analysis.broker import get_broker  # noqa: E402

broker = get_broker()

if os.environ.get("ANALYSIS_PRELOAD", "1") == "1" and not settings.BROKER_URL.startswith("embedded"):
    # Load the network now, once per process, not inside the first message's time limit.
    from analysis.processing import pipeline_for_worker  # noqa: E402

    pipeline_for_worker()
