import numpy as np
import pytest

import analysis.engine as engine
from analysis.engine import phantoms

CHANGE_KEYS = {"baseline", "followup", "change_pct", "uncertainty_pct", "significant"}


@pytest.fixture(scope="module")
def pair():
    base = phantoms.trichoscopy_phantom(77, size_px=(480, 360), mm_per_px=0.008, strength=0.4, fu_per_cm2=110)
    return base, phantoms.follow_up(base, 3, change_fraction=-0.3, strength=0.3)


def test_it_reports_the_contract_keys_and_a_loss(pair, segmenter):
    base, fol = pair
    c = engine.compare_images(base.image, fol.image, view="trichoscopy", mm_per_px=0.008, segmenter=segmenter)
    d = c.to_dict()
    assert set(d) == {"comparable", "reasons", "overlap_fraction", "changes"}
    assert set(d["changes"]) == {"hair_count", "density_per_cm2", "mean_caliber_um", "scalp_visibility"}
    assert all(set(v) == CHANGE_KEYS for v in d["changes"].values())
    assert d["comparable"] and d["overlap_fraction"] > 0.6
    assert d["changes"]["hair_count"]["change_pct"] < -10
    assert c.change_map_png().startswith(b"\x89PNG")


def test_unrelated_photos_are_not_comparable(pair, segmenter):
    other = np.random.default_rng(0).integers(0, 255, pair[0].image.shape, dtype=np.uint8)
    c = engine.compare_images(pair[0].image, other, view="trichoscopy", mm_per_px=0.008, segmenter=segmenter)
    assert not c.comparable and c.reasons and c.change_map_bgr is None


def test_uncertainty_comes_from_measured_repeatability():
    from analysis.engine import comparison

    sigma = comparison.repeatability()
    assert set(sigma) == set(comparison.METRIC_KEYS) and all(v > 0 for v in sigma.values())


def test_the_homography_maps_follow_up_pixels_onto_the_baseline_photo_as_stored():
    import cv2

    from analysis.engine import phantoms

    base = phantoms.overview_phantom(5, "crown", size_px=(1600, 1200), strength=0.2)
    # The same photo shifted by 40 px: a pure translation at the stored resolution, while the
    # engine registers at a reduced working resolution.
    shift = np.float32([[1, 0, 40], [0, 1, 0]])
    moved = cv2.warpAffine(base.image, shift, (1600, 1200), borderMode=cv2.BORDER_REFLECT)
    result = engine.compare_images(base.image, moved, view="crown", mm_per_px=0.15)
    h = np.array(result.homography_original_px())
    point = h @ np.array([840.0, 600.0, 1.0])
    assert np.allclose(point[:2] / point[2], [800.0, 600.0], atol=4.0)


def test_comparing_two_analyses_gives_what_comparing_the_photos_gives(pair, segmenter):
    from analysis.engine.comparison import analysis_from_coverage, compare_analyses

    base, fol = pair
    whole = engine.compare_images(base.image, fol.image, view="trichoscopy", mm_per_px=0.008, segmenter=segmenter)
    b, f = engine.analyze_batch(
        [base.image, fol.image], views=["trichoscopy"] * 2, mm_per_px=[0.008] * 2, segmenter=segmenter
    )
    assert compare_analyses(b, f).to_dict() == whole.to_dict()
    # The earlier photo rebuilt from its coverage map, as a worker does from the stored one.
    again = analysis_from_coverage(base.image, b.prob, view="trichoscopy", mm_per_px=0.008)
    assert again.graph is not None and again.heatmap_bgr is None and again.prepared.seg_input is None
    assert compare_analyses(again, f).to_dict() == whole.to_dict()
    with pytest.raises(ValueError, match="working size"):
        analysis_from_coverage(base.image, b.prob[:-1], view="trichoscopy", mm_per_px=0.008)
