"""A worker whose storage fails the first ANALYSIS_TEST_FAIL_TIMES reads (a transient fault)."""

import itertools
import os

import analysis.worker  # noqa: F401  (sets Django and the broker up first)
from analysis import processing

_read = processing._read
_calls = itertools.count()


def _flaky_read(field):
    if next(_calls) < int(os.environ.get("ANALYSIS_TEST_FAIL_TIMES", "0")):
        raise OSError("storage unreachable")
    return _read(field)


processing._read = _flaky_read
