import numpy as np
import pytest

from analysis.engine import grading, heatmaps


def test_heatmap_adds_a_legend_band_and_encodes_png():
    img = np.full((120, 160, 3), 128, np.uint8)
    prob = np.zeros((120, 160), np.float32)
    prob[:, :80] = 0.8
    out = heatmaps.coverage_heatmap(img, prob, 0.01)
    assert out.shape[1] == 160 and out.shape[0] > 120
    left, right = out[60, 20].astype(int), out[60, 140].astype(int)
    assert left[0] > left[2] and right[2] > right[0]  # dense: blue-green; thin: red
    assert heatmaps.to_png(out).startswith(b"\x89PNG")


def test_change_map_marks_loss_and_gain_in_distinct_colours():
    img = np.full((100, 100, 3), 128, np.uint8)
    lost = np.zeros((100, 100), bool)
    gained = np.zeros((100, 100), bool)
    lost[10, 10] = True
    gained[50, 50] = True
    out = heatmaps.change_map(img, lost, gained, 0.01)
    assert tuple(out[10, 10]) == heatmaps.LOSS_BGR and tuple(out[50, 50]) == heatmaps.GAIN_BGR


def test_grading_rises_with_visibility_and_is_none_for_trichoscopy():
    stages = [grading.suggest("crown", "male", np.full((3, 3), v), None)["stage_index"] for v in (0.3, 0.6, 0.95)]
    assert stages == sorted(stages) and stages[0] == 1 and stages[-1] >= 6
    lud = grading.suggest("part_line", "female", np.full((3, 3), 0.9), 9.0)
    assert lud["scale"] == "ludwig" and lud["stage_index"] == 3 and 0 < lud["confidence"] <= 1
    assert grading.suggest("trichoscopy", "male", np.zeros((3, 3)), None) is None


def test_grading_confidence_is_the_chance_the_stage_holds_given_the_measurement_error():
    edges = grading.NORWOOD_EDGES
    mid = (edges[0] + edges[1]) / 2
    _, sure = grading._stage(mid, edges, 1e-4)
    assert sure == pytest.approx(grading.MAX_CONFIDENCE)  # an exact score: only the one-view cap
    _, at_mid = grading._stage(mid, edges, 0.12)
    _, near_edge = grading._stage(edges[1] - 0.01, edges, 0.12)
    assert near_edge < at_mid < 0.5 * grading.MAX_CONFIDENCE  # a 0.13-wide stage under 0.12 noise
    # The same noise leaves a wide Ludwig stage far more certain than a narrow Norwood one.
    _, ludwig = grading._stage(0.85, grading.LUDWIG_EDGES, 0.12)
    assert ludwig > 0.9 * grading.MAX_CONFIDENCE
