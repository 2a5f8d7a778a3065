"""Severity *suggestion* (Norwood-Hamilton for men, Ludwig for women) from regional scalp
visibility. A single view sees only part of the pattern, so confidence is capped; the
clinician's grade is the record."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII")
NORWOOD_EDGES = (0.12, 0.25, 0.38, 0.52, 0.66, 0.8)  # loss score -> stage 1..7
LUDWIG_EDGES = (0.3, 0.6)  # loss score -> stage 1..3
MAX_CONFIDENCE = 0.7
BASE_VISIBILITY = 0.35  # typical visibility of a full head of hair in these views
# One overview photo's visibility error as a standard deviation: the benchmark's median
# |error| is 0.050-0.065 (docs/ACCURACY.md), and for normal errors the median is 0.674 sigma.
VISIBILITY_SD = 0.08


def _stage(score: float, edges, score_sd: float) -> tuple[int, float]:
    """Stage index (1-based) and a confidence: the chance that a score measured with this
    standard deviation lies in the same stage, at most MAX_CONFIDENCE (one view never shows
    the whole pattern). It falls near stage boundaries and for narrow stages."""
    i = int(np.searchsorted(edges, score))
    bounds = (-math.inf,) + tuple(edges) + (math.inf,)
    lo, hi = bounds[i], bounds[i + 1]
    measured = NormalDist(score, score_sd)
    return i + 1, float(MAX_CONFIDENCE * (measured.cdf(hi) - measured.cdf(lo)))


def loss_score(view: str, grid: np.ndarray, part_width_mm: float | None) -> float:
    """0 = full hair, 1 = bare, from the grid of regional scalp visibility (rows top->bottom)."""
    g = np.asarray(grid, float)
    if view == "crown":
        centre = g[g.shape[0] // 2, g.shape[1] // 2]
        v = 0.6 * centre + 0.4 * float(np.nanmean(g))
    elif view in ("hairline", "temple_left", "temple_right"):
        # Recession shows as bare skin reaching down into the frame from the top rows.
        v = float(np.nanmean(g[: max(1, g.shape[0] * 2 // 3)]))
    else:
        v = float(np.nanmean(g))
    s = (v - BASE_VISIBILITY) / (1 - BASE_VISIBILITY)
    if part_width_mm is not None:
        s = max(s, (part_width_mm - 2.0) / 10.0)  # a part wider than about 2 mm means thinning
    return float(np.clip(s, 0, 1))


def suggest(view: str, sex: str | None, grid: np.ndarray | None, part_width_mm: float | None) -> dict | None:
    if view == "trichoscopy" or grid is None:
        return None
    scale = "ludwig" if sex == "female" or (sex is None and view == "part_line") else "norwood"
    s = loss_score(view, grid, part_width_mm)
    score_sd = VISIBILITY_SD / (1 - BASE_VISIBILITY)  # the score is visibility rescaled
    if scale == "ludwig":
        idx, conf = _stage(s, LUDWIG_EDGES, score_sd)
        value = ROMAN[idx - 1]
    else:
        idx, conf = _stage(s, NORWOOD_EDGES, score_sd)
        value = ROMAN[idx - 1] + (" vertex" if view == "crown" and idx == 3 else "")
    return {"scale": scale, "value": value, "stage_index": idx, "confidence": round(conf, 2)}
