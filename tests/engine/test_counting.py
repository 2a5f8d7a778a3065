"""The hair-end counter: its targets are exact on phantoms, its maths is right, its weights
round-trip, and the shipped counter counts a field it has never seen."""

import numpy as np
import pytest
import torch

from analysis.engine import counting, phantoms


def _polylines(p, s):
    return [phantoms._project(p.world_to_image, phantoms._dense(h.points_mm, 0.004)) * s for h in p.scalp.hairs]


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_end_targets_integrate_to_the_true_number_of_visible_hairs(seed):
    p = phantoms.trichoscopy_phantom(seed, size_px=(200, 160), mm_per_px=0.01)
    s = p.mm_per_px / counting.CANON_MM_PER_PX
    size = (round(200 * s), round(160 * s))
    t = counting.end_targets(_polylines(p, s), [h.diameter_um for h in p.scalp.hairs], size)
    assert t.shape == (counting.N_BINS + 1, size[1] + 2 * counting.PAD, size[0] + 2 * counting.PAD)
    assert t[: counting.N_BINS].sum() == pytest.approx(p.truth["hair_count"], abs=0.01)
    mean_cal = t[counting.N_BINS].sum() / t[: counting.N_BINS].sum() * counting.WIDTH_UNIT_UM
    assert mean_cal == pytest.approx(p.truth["mean_caliber_um"], abs=0.05)


def test_a_shaft_crossing_the_field_ends_on_the_edge_and_counts_once():
    pts = np.stack([np.linspace(-20, 120, 300), np.full(300, 30.0)], 1)  # through a 100 px field
    ends = counting.visible_stretch_ends(pts, 100, 60)
    assert len(ends) == 2
    assert ends[0][0] == pytest.approx(0, abs=0.5) and ends[1][0] == pytest.approx(100, abs=0.5)
    assert counting.visible_stretch_ends(pts + [0, 100], 100, 60) == []


def test_fractions_and_histogram_follow_the_bins():
    per_bin = np.zeros(counting.N_BINS)
    per_bin[1] = 2.0  # 20-30 um
    per_bin[-1] = 6.0  # >= 80 um
    c = counting.EndCounts(8.0, per_bin, 70.0, np.zeros((4, 4)))
    assert c.fraction_below(40) == pytest.approx(0.25)
    assert c.fraction_at_least(60) == pytest.approx(0.75)
    assert c.fraction_below(25) == pytest.approx(0.125)  # half of the 20-30 bin
    hist = c.histogram(list(range(10, 160, 10)))
    assert sum(hist) == 8 and hist[2] == 2  # 20-30 um
    assert counting.EndCounts(0.2, per_bin * 0, None, np.zeros((1, 1))).fraction_below(40) is None


def test_canonical_input_resamples_to_the_canonical_scale_and_frames_it():
    prob = np.zeros((100, 200), np.float32)
    prob[40:60, :] = 1
    x, s = counting.canonical_input(prob, np.ones_like(prob, bool), 0.004)
    assert s == pytest.approx(0.5)
    assert x.shape == (2, 50 + 2 * counting.PAD, 100 + 2 * counting.PAD)
    assert x[0].sum() == pytest.approx(prob.sum() * s * s, rel=0.01)  # coverage mass kept
    assert x[1, 0].sum() == 0 and x[1, counting.PAD + 5, counting.PAD + 5] == 1


def test_counter_weights_round_trip(tmp_path):
    cfg = counting.CounterConfig(base=4, depth=2, version="test")
    torch.manual_seed(0)
    model = counting.build_counter(cfg).eval()
    counting.save_counter(model, cfg, tmp_path, {"steps": 1})
    loaded, cfg2, meta = counting.load_counter_weights(tmp_path)
    assert cfg2 == cfg and meta["steps"] == 1
    x = np.random.default_rng(0).random((2, 40, 56)).astype(np.float32)
    a = counting.Counter(model, cfg, "cpu").raw(x)
    b = counting.Counter(loaded, cfg2, "cpu").raw(x)
    assert a.shape == (counting.N_BINS + 1, 40, 56)
    assert np.allclose(a, b, atol=2e-2)  # fp16 storage


def test_a_counter_in_the_weights_folder_takes_over_count_and_caliber(tmp_path, segmenter, monkeypatch):
    """No counter is shipped yet (see docs/ENGINE.md); when one is trained into the weights
    folder, analyze_image reports its count, density and caliber classes."""
    cfg = counting.CounterConfig(base=4, depth=2, version="counter-test")
    torch.manual_seed(1)
    counter = counting.Counter(counting.build_counter(cfg).eval(), cfg, "cpu")
    monkeypatch.setattr(counting, "load_counter", lambda *a, **k: counter)
    p = phantoms.trichoscopy_phantom(12, size_px=(320, 240), mm_per_px=0.008)
    from analysis.engine.pipeline import analyze_image, prepare

    v = analyze_image(p.image, view="trichoscopy", mm_per_px=p.mm_per_px, segmenter=segmenter).to_dict()
    assert "counter-test" in v["model_version"]
    prep = prepare(p.image, "trichoscopy", p.mm_per_px)
    prob = np.where(prep.valid, segmenter.predict([prep.seg_input])[0], 0).astype(np.float32)
    c = counter.count(prob, prep.valid, p.mm_per_px)
    area_cm2 = prep.valid.sum() * 0.008**2 / 100  # the area the date stamp leaves visible
    assert v["hair_count"] == round(c.hairs)
    assert v["density_per_cm2"] == pytest.approx(c.hairs / area_cm2, abs=0.01)
    assert len(v["caliber_histogram_um"]["counts"]) == len(v["caliber_histogram_um"]["edges_um"])


def test_no_counter_is_loaded_from_a_folder_without_counter_weights():
    assert counting.load_counter("cpu", weights_dir=counting.WEIGHTS_DIR.parent / "no-such-folder") is None
