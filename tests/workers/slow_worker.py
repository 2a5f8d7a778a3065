"""A worker whose analysis stalls (ANALYSIS_TEST_SLEEP_S), so a test can kill it mid-run."""

import os
import time

import analysis.worker  # noqa: F401  (sets Django and the broker up first)
from analysis import processing

_analyse = processing._analyse


def _slow_analyse(pending, token, counts):
    deadline = time.monotonic() + float(os.environ.get("ANALYSIS_TEST_SLEEP_S", "0"))
    while time.monotonic() < deadline:
        time.sleep(0.05)  # Python between naps, as the engine is: dramatiq's time limit can interrupt it
    return _analyse(pending, token, counts)


processing._analyse = _slow_analyse
