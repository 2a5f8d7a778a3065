from dataclasses import replace

import cv2
import numpy as np
import pytest

from analysis.engine import metrics, pipeline

from .conftest import lines_coverage


def test_skeletonize_thins_a_bar_to_one_line():
    m = np.zeros((20, 40), bool)
    m[5:15, 3:37] = True
    sk = metrics.skeletonize(m)
    assert sk.sum() > 20 and sk.any(axis=0).sum() >= 20 and sk.any(axis=1).sum() <= 2


@pytest.mark.parametrize("width", [4.0, 10.0])
def test_crossing_hairs_count_as_two_with_their_width(width):
    g = metrics.build_hair_graph(lines_coverage([(10, 100, 190, 100), (100, 10, 100, 190)], width), 0.005)
    assert len(g.chains) == 2
    assert np.allclose(g.caliber_px, width, rtol=0.08)


@pytest.mark.parametrize("dy", [8, 20])  # 10 and 25 degrees
@pytest.mark.parametrize("width", [4.0, 10.0])
def test_hairs_crossing_at_a_shallow_angle_count_as_two(dy, width):
    """They run together for a stretch: a fork, one shared branch, another fork. Each fork
    pairs the shared branch with one hair; the other hair must still count once, not twice."""
    g = metrics.build_hair_graph(
        lines_coverage([(10, 100 - dy, 190, 100 + dy), (10, 100 + dy, 190, 100 - dy)], width), 0.005
    )
    assert len(g.chains) == 2
    assert sorted(g.fu_sizes) == [1, 1]  # passing through each other, not leaving one opening


@pytest.mark.parametrize("dy", [10, 40])  # 7 and 25 degrees from the middle
def test_two_hairs_from_one_opening_form_a_two_hair_unit(dy):
    """At a small angle they overlap near the opening: the stem there has a free end and is
    paired with one hair, so only the other leaves the fork unpaired; the stem still joins them."""
    g = metrics.build_hair_graph(lines_coverage([(100, 100, 190, 100 - dy), (100, 100, 190, 100 + dy)], 6), 0.005)
    assert len(g.chains) == 2 and sorted(g.fu_sizes) == [2]


def test_a_hair_crossing_another_near_its_tip_is_not_a_unit_with_it():
    g = metrics.build_hair_graph(lines_coverage([(10, 100, 190, 100), (100, 10, 100, 120)], 6), 0.005)
    assert len(g.chains) == 2 and sorted(g.fu_sizes) == [1, 1]


def test_separate_hairs_are_separate_units():
    g = metrics.build_hair_graph(lines_coverage([(10, 40, 150, 40), (10, 150, 150, 150)], 5), 0.005)
    assert len(g.chains) == 2 and sorted(g.fu_sizes) == [1, 1]


def test_a_hair_entering_the_frame_by_a_sliver_counts():
    g = metrics.build_hair_graph(lines_coverage([(-20, 100, 6, 100)], 4), 0.005)
    assert len(g.chains) == 1


def test_a_thick_hair_cut_short_by_the_frame_counts():
    """Its centre line stops half its width short of the frame's edge, which must still count
    as reaching the edge: as much of a 12 px hair shows as it is wide (20 px were needed)."""
    g = metrics.build_hair_graph(lines_coverage([(-30, 100, 12, 100)], 12), 0.005)
    assert len(g.chains) == 1


def test_a_hair_entering_the_frame_across_another_counts():
    """A hair enters from the top edge and crosses one lying just inside the frame. Its
    stretch from the crossing to the frame's edge is short, with one junction and a free end,
    but it is a hair leaving the frame, not a thinning spur."""
    g = metrics.build_hair_graph(lines_coverage([(20, 14, 180, 14), (100, -20, 100, 28)], 8), 0.005)
    assert len(g.chains) == 2


def test_a_short_hair_crossing_another_at_the_frame_edge_counts():
    """The crossing's junction zone reaches the frame's edge, so no branch of the short hair
    does: its one branch beyond the zone is shorter than a hair. Where it leaves the frame it
    continues that branch, which makes it a hair cut by the frame (the old graph counted 1)."""
    g = metrics.build_hair_graph(lines_coverage([(0, 113, 190, 115), (-27, 141, 19, 96)], 7), 0.005)
    assert g.hair_count == 2


def test_a_hair_seen_only_where_a_crossing_meets_the_frame_counts():
    """A third hair enters the frame where two others cross at its edge and ends inside their
    junction zone: it has no branch at all, only its run of coverage along the frame's edge."""
    lines = [(0, 98, 190, 113), (-5, 140, 9, 82), (-37, 91, 7, 85)]
    g = metrics.build_hair_graph(lines_coverage(lines, 6), 0.005)
    assert (len(g.chains), g.hair_count) == (2, 3)
    (x, y), = g.frame_hairs
    assert x == 0 and 80 <= y <= 95
    assert len(g.positions()) == g.hair_count


def test_the_regional_grid_counts_a_hair_seen_only_at_the_frame_in_its_cell():
    cov = lines_coverage([(0, 98, 190, 113), (-5, 140, 9, 82), (-37, 91, 7, 85)], 6)
    g = metrics.build_hair_graph(cov, 0.005)
    valid = np.ones(cov.shape, bool)
    with_it = np.array(pipeline.regional_grid(cov, valid, g, 0.005)["density_per_cm2"])
    without = np.array(pipeline.regional_grid(cov, valid, replace(g, frame_hairs=[]), 0.005)["density_per_cm2"])
    cell_cm2 = pipeline.measured_area_cm2(valid[66:133, :66], 0.005)  # the left middle cell of 3 x 3
    assert with_it[1, 0] - without[1, 0] == pytest.approx(1 / cell_cm2, rel=1e-3)
    with_it[1, 0] = without[1, 0]
    assert (with_it == without).all()


@pytest.mark.parametrize("lines", [[(0, 100, 190, 100), (-40, 140, 60, 40)], [(-20, 100, 190, 100), (6, -20, 6, 220)]])
def test_hairs_crossing_at_the_frame_edge_are_not_counted_again_where_they_leave_it(lines):
    g = metrics.build_hair_graph(lines_coverage(lines, 8), 0.005)
    assert (g.hair_count, g.frame_hairs) == (2, [])


def test_a_hair_under_two_pixels_wide_counts_and_specks_do_not():
    """A 1.2 px vellus (15 um at 12 um/px) is erased by the opening that removes specks."""
    cov = lines_coverage([(20, 100, 180, 100)], 1.2)
    rng = np.random.default_rng(0)
    for y, x in rng.integers(10, 190, (30, 2)):
        cov[y if abs(y - 100) > 5 else y + 20, x] = 1.0  # single-pixel specks, off the hair
    g = metrics.build_hair_graph(cov, 0.012)
    assert len(g.chains) == 1


def _outlined(lines, width, gap, gap_coverage, size=200):
    """Coverage of hairs the network outlined: a stripe `gap` px wide along each centre line
    reads `gap_coverage` (half-hair), as under non-polarised light."""
    cov = lines_coverage(lines, width, size)
    inner = lines_coverage(lines, gap, size)
    return cov - inner * (1 - gap_coverage)


def test_hairs_the_network_outlined_count_once_with_their_width():
    """80 um hairs at 5 um/px, crossing the frame, outlined by 5 px edges: unfilled, each
    outline would be a hair of its own."""
    lines = [(-10, 40, 210, 50), (-10, 100, 210, 95), (-10, 150, 210, 170)]
    prob = _outlined(lines, 16, 6, 0.4)
    unfilled = metrics.hair_mask(prob, 12)
    assert cv2.connectedComponents(unfilled.astype(np.uint8))[0] - 1 == 6
    g = metrics.build_hair_graph(prob, 0.005)
    assert len(g.chains) == 3
    # Calibers are the map's mass across the shaft, and the gap holds 0.4: 16 - 6 x 0.6 = 12.4.
    assert np.all(g.caliber_px > 12)


def test_on_an_outlined_field_fainter_gaps_are_filled_too():
    """Once a field's pattern is outlines, a gap the streak makes fainter (0.25) is one as
    well; among filled hairs it is left alone."""
    filled = lines_coverage([(-10, y, 410, y + 8) for y in range(20, 200, 45)], 16, size=400)
    faint = _outlined([(-10, 380, 410, 370)], 16, 6, 0.25, size=400)
    field = np.maximum(filled, faint)
    assert len(metrics.build_hair_graph(field, 0.005).chains) == 4 + 2
    outlined = _outlined([(-10, y, 410, y + 5) for y in range(220, 360, 35)], 16, 6, 0.4, size=400)
    assert len(metrics.build_hair_graph(np.maximum(field, outlined), 0.005).chains) == 4 + 4 + 1


def test_the_soft_edges_of_hairs_lying_close_do_not_make_a_field_outlined():
    """Nine hairs 10 px apart: the closing spans the skin between them, whose edges read
    0.3-0.5 and add more than HOLLOW_SHARE of the mask, but each gap is mostly skin. So the
    field is not outlined, and the one faintly outlined hair on it is left as two."""
    close = lines_coverage([(-10, y, 410, y + 8) for y in range(20, 200, 20)], 10, size=400)
    faint = _outlined([(-10, 380, 410, 370)], 16, 6, 0.25, size=400)
    assert len(metrics.build_hair_graph(np.maximum(close, faint), 0.005).chains) == 9 + 2


def test_outlines_are_not_filled_where_the_gap_reads_as_skin():
    g = metrics.build_hair_graph(_outlined([(-10, 100, 210, 95)], 16, 6, 0.1), 0.005)
    assert len(g.chains) == 2


def test_two_hairs_lying_close_among_filled_hairs_stay_two():
    """A gap of half-hair between two hairs is filled only when such gaps are a field's pattern
    (`HOLLOW_SHARE` of the mask), not for one pair among hairs the network filled."""
    others = [(10, y, 390, y + 8) for y in range(20, 300, 30)]
    pair = [(10, 340, 390, 340), (10, 354, 390, 354)]  # 10 px wide, a 4 px gap between them
    prob = np.maximum(lines_coverage(others + pair, 10, size=400), 0)
    prob[346:350, 10:390] = np.maximum(prob[346:350, 10:390], 0.35)
    g = metrics.build_hair_graph(prob, 0.005)
    assert len(g.chains) == len(others) + 2


def test_a_stub_at_the_frame_edge_counts_but_its_width_is_not_measured():
    g = metrics.build_hair_graph(lines_coverage([(10, 100, 190, 100), (-20, 40, 20, 40)], 10), 0.005)
    assert len(g.chains) == 2
    long_hair = int(np.argmax(g.length_px))
    assert list(metrics.measurable(g)) == [long_hair]
    assert g.caliber_px[long_hair] == pytest.approx(10, rel=0.08)
    assert g.caliber_px[1 - long_hair] < 8  # what the stub would have reported


def test_when_no_hair_is_long_enough_all_are_measured():
    g = metrics.build_hair_graph(lines_coverage([(-20, 40, 20, 40)], 10), 0.005)
    assert len(g.chains) == 1 and list(metrics.measurable(g)) == [0]


def test_faint_thin_hairs_at_a_coarse_pitch_keep_one_caliber_each():
    # Five 2 px hairs at 12 um/px, softened as the network softens them: on the map's own grid
    # the mask breaks them into fragments; on the caliber grid each is one hair of its width.
    lines = [(10, 30 + i * 35, 190, 40 + i * 35) for i in range(5)]
    sharp = metrics.build_hair_graph(lines_coverage(lines, 2.0), 0.012)
    true_um = float(np.mean(sharp.caliber_px)) * 12.0
    cal = metrics.calibers_um(cv2.GaussianBlur(lines_coverage(lines, 2.0), (0, 0), 1.2), 0.012)
    assert len(cal) == 5
    assert np.allclose(cal, true_um, rtol=0.05)


def test_wide_hairs_at_a_fine_pitch_are_measured_on_the_coarser_caliber_grid():
    lines = [(10, 40, 190, 60), (20, 150, 180, 120)]
    cal = metrics.calibers_um(lines_coverage(lines, 12.0), 0.0025)
    native = metrics.build_hair_graph(lines_coverage(lines, 12.0), 0.0025)
    assert len(cal) == 2
    assert np.allclose(cal, np.mean(native.caliber_px) * 2.5, rtol=0.08)


def test_calibers_at_the_caliber_pitch_reuse_the_given_graph():
    cov = lines_coverage([(10, 100, 190, 100)], 5.0)
    g = metrics.build_hair_graph(cov, metrics.CALIBER_MM_PER_PX)
    g.caliber_px[:] = 7.0  # marks the graph as the one measured
    assert list(metrics.calibers_um(cov, metrics.CALIBER_MM_PER_PX, None, g)) == [7.0 * 6.0]


def test_visibility_is_uncovered_fraction():
    prob = np.zeros((10, 10), np.float32)
    prob[:, :3] = 1
    assert metrics.scalp_visibility(prob) == pytest.approx(0.7)
    valid = np.zeros((10, 10), bool)
    valid[:, :5] = True
    assert metrics.scalp_visibility(prob, valid) == pytest.approx(0.4)


def test_part_width_of_a_bare_band():
    prob = np.full((200, 300), 0.6, np.float32)
    prob[:, 140:160] = 0.0  # a 20 px part
    w, ang = metrics.part_width_px(prob)
    assert abs(w - 20) < 1.5 and (ang < 5 or ang > 175)


def test_part_width_ignores_a_bare_stretch_running_out_of_the_frame():
    """The network can lose blonde hair in a dark corner: coverage then falls to nothing towards
    one edge. That stretch is lower than the part, but has no hair beyond it, so it is no part
    (it was measured as one, 16.7 mm for a 1.75 mm part, on a benchmark photo)."""
    prob = np.full((200, 300), 0.6, np.float32)
    prob[:, 120:135] = 0.1  # a 15 px part, not quite bare
    prob[:, 250:] = np.linspace(0.5, 0.0, 50)[None, :]  # hair fading out towards the right edge
    w, ang = metrics.part_width_px(prob)
    assert abs(w - 15) < 2 and (ang < 5 or ang > 175)


@pytest.mark.parametrize("part_px, ramp_px", [(20, 40), (40, 60), (30, 25)])
def test_part_width_where_hair_combed_away_from_it_overlaps_at_random(part_px, ramp_px):
    # Hair rooted beside the part is combed away from it: the amount of hair grows in proportion
    # to the distance from the edge until it reaches its full length, and random overlap makes
    # the coverage 1 - exp(-amount), which rises steeply at first and then saturates. A straight
    # line through that curve meets the floor inside the part and measured it too narrow.
    x = np.arange(300, dtype=np.float32) - 150
    beyond = np.clip(np.abs(x) - part_px / 2, 0, ramp_px)
    cover = 1 - np.exp(-1.2 * beyond / ramp_px)  # 70% coverage once fully ramped
    prob = np.tile(cover, (200, 1)).astype(np.float32)
    w, ang = metrics.part_width_px(prob)
    assert abs(w - part_px) < 2 and (ang < 5 or ang > 175)
