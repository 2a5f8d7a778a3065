"""CPU thread budget for workers: cores ÷ (processes × threads), never oversubscribed."""

import os

from django.conf import settings


def cpu_thread_budget() -> int:
    if settings.ANALYSIS_TORCH_THREADS:
        return settings.ANALYSIS_TORCH_THREADS
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, settings.WORKER_PROCESSES * settings.WORKER_THREADS))


def limit_cpu_threads() -> int:
    """Call before torch is first imported: OpenMP reads these once, when it starts."""
    n = cpu_thread_budget()
    os.environ["OMP_NUM_THREADS"] = str(n)
    # Idle OpenMP threads sleep instead of spinning: on a machine shared with the web server and the
    # database, spinning threads halved the network's speed (2.5 s -> 1.5 s per 1280×1024 photo here).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n
