"""Start analysis worker processes (replaces this process with ``dramatiq analysis.worker``).

    python manage.py analysis_worker                                # CPU: queue "analysis", 1 process per core
    python manage.py analysis_worker --gpu --threads 8              # GPU: queue "analysis-gpu", batches
    python manage.py analysis_worker --queues analysis analysis-gpu --processes 2

It exports the thread budget (torch/OpenMP threads = cores ÷ (processes × threads)) so the
processes never oversubscribe the CPU. Needs BROKER_URL set to redis:// or amqp://.
"""

import os
import shutil
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run dramatiq analysis workers (CPU or GPU) against BROKER_URL."

    def add_arguments(self, parser):
        parser.add_argument("--gpu", action="store_true", help="Listen on analysis-gpu and use CUDA.")
        parser.add_argument("--queues", nargs="+", help="Queues (default: analysis, or analysis-gpu with --gpu).")
        parser.add_argument("--processes", type=int, default=None,
                            help="Default: one per core (at most 4) on CPU, each with one torch thread: much of "
                                 "the engine is single-threaded, so 2 processes × 1 thread beat 1 × 2 on 2 cores; "
                                 "1 on GPU.")
        parser.add_argument("--threads", type=int, default=None,
                            help="Threads per process (default 1 on CPU, 8 on GPU so decoding overlaps the network).")
        parser.add_argument("--batch-size", type=int, default=None, help="Images per forward pass (GPU).")

    def handle(self, *args, gpu, queues, processes, threads, batch_size, **options):
        if settings.BROKER_URL.startswith("embedded"):
            raise CommandError("BROKER_URL is 'embedded': the web process analyses in-process; "
                               "set BROKER_URL=redis://... or amqp://... to run separate workers")
        threads = threads or (8 if gpu else 1)
        processes = processes or (1 if gpu else min(4, len(os.sched_getaffinity(0))))
        env = {**os.environ, "WORKER_PROCESSES": str(processes), "WORKER_THREADS": str(threads)}
        if gpu:
            env.setdefault("ANALYSIS_DEVICE", "cuda")
        if batch_size:
            env["ANALYSIS_BATCH_SIZE"] = str(batch_size)
        queues = queues or (["analysis-gpu"] if gpu else ["analysis"])
        argv = [sys.executable, "-m", "dramatiq", "analysis.worker", "--processes", str(processes),
                "--threads", str(threads), "--queues", *queues]
        self.stdout.write("exec " + " ".join(argv[1:]))
        sys.stdout.flush()
        if shutil.which(sys.executable) is None:
            raise CommandError(f"cannot run {sys.executable}")
        os.execve(sys.executable, argv, env)
