import numpy as np
import pytest
import torch

from analysis.engine import segmentation as seg
from analysis.engine import training


def test_the_unet_keeps_spatial_shape():
    model = seg.UNet(3, 4, 3).eval()
    with torch.inference_mode():
        assert model(torch.zeros(2, 3, 64, 96)).shape == (2, 1, 64, 96)


def test_preprocess_is_rgb_channels_first_and_exposure_invariant():
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 0] = 200  # blue in OpenCV order
    img[0, 0] = (10, 10, 10)
    x = seg.preprocess(img)
    assert x.shape == (3, 8, 8) and x.dtype == np.float32
    assert x[2, 1, 1] > x[0, 1, 1]  # blue is the last channel once converted to RGB
    brighter = seg.preprocess((img * 1.2).astype(np.uint8))
    assert np.allclose(x, brighter, atol=0.1)


def test_predict_rejects_a_bad_shape_with_a_clear_message(segmenter):
    with pytest.raises(ValueError, match="BGR"):
        segmenter.predict([np.zeros((10, 10), np.uint8)])
    with pytest.raises(TypeError, match="list"):
        segmenter.predict(np.zeros((10, 10, 3), np.uint8))


def test_predict_tiles_large_images_and_returns_probabilities(segmenter):
    imgs = [
        np.random.default_rng(0).integers(0, 255, (700, 530, 3), dtype=np.uint8),
        np.full((50, 70, 3), 128, np.uint8),
    ]
    out = segmenter.predict(imgs)
    assert [o.shape for o in out] == [(700, 530), (50, 70)]
    assert all(o.dtype == np.float32 and 0 <= o.min() and o.max() <= 1 for o in out)
    assert segmenter.device == "cpu" and segmenter.model_version


def test_shipped_weights_are_small_and_carry_their_config():
    assert (seg.WEIGHTS_DIR / "unet.pt").stat().st_size < 10e6
    _, cfg, meta = seg.load_weights(seg.WEIGHTS_DIR)
    assert cfg.colour_order == "RGB" and meta["training_data_version"] and meta["steps"] > 0


def test_weights_round_trip_after_a_short_training_run(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "CROP", 64)
    monkeypatch.setattr(
        training,
        "_sample",
        lambda s: (
            np.random.default_rng(s).integers(0, 255, (80, 80, 3), dtype=np.uint8),
            np.random.default_rng(s).random((80, 80)).astype(np.float32),
        ),
    )
    cfg = seg.SegConfig(base=4, depth=2, version="tiny-test")
    training.train(out_dir=tmp_path, n_images=2, max_steps=2, max_minutes=1, batch_size=2, cfg=cfg, threads=1)
    model, cfg2, _ = seg.load_weights(tmp_path)
    assert cfg2 == cfg
    s = seg.Segmenter(model, cfg2, "cpu")
    img = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    a = s.predict([img])[0]
    b = seg.Segmenter(seg.load_weights(tmp_path)[0], cfg2, "cpu").predict([img])[0]
    assert np.array_equal(a, b)


def test_the_classical_baseline_finds_dark_hair_on_light_skin():
    img = np.full((100, 100, 3), 200, np.uint8)
    img[48:53, :] = 30
    m = seg.classical_segment(img, 8)
    assert m[50].mean() > 0.9 and m[10].mean() < 0.1
