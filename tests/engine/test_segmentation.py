import numpy as np
import pytest
import torch

from analysis.engine import phantoms, training
from analysis.engine import segmentation as seg


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
    training.train(
        out_dir=tmp_path, n_images=2, max_steps=2, max_minutes=1, batch_size=2, cfg=cfg, threads=1, centre_lines=True
    )
    model, cfg2, meta = seg.load_weights(tmp_path)
    assert meta["loss"] == "bce+dice+centre-line recall"
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


# ---------------------------------------------------------------- the device-side predict against the numpy one


def _numpy_predict(model, images, batch_tiles=8):
    """predict() as it was before preprocessing, padding and blending moved onto the model's
    device (numpy on the CPU), kept here as the reference the new path must reproduce. The tile
    layout did not move, so it is the module's."""

    def ramp(n):
        return np.clip(np.minimum(np.arange(n) + 1, np.arange(n)[::-1] + 1).astype(np.float32) / seg.OVERLAP, 0.05, 1.0)

    jobs, outs = [], []
    for n, img in enumerate(images):
        rgb = img[..., ::-1].astype(np.float32) / 255.0
        x = np.ascontiguousarray(((rgb - rgb.reshape(-1, 3).mean(0)) / max(float(rgb.std()), 0.02)).transpose(2, 0, 1))
        h, w = x.shape[1:]
        outs.append((np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)))
        jobs += [(n, y0, x0, th, tw, x[:, y0 : y0 + th, x0 : x0 + tw]) for y0, x0, th, tw in seg._tiles(h, w)]
    m = model.multiple
    for i in range(0, len(jobs), batch_tiles):
        chunk = jobs[i : i + batch_tiles]
        th, tw = max(-(-j[3] // m) * m for j in chunk), max(-(-j[4] // m) * m for j in chunk)
        batch = np.stack([np.pad(j[5], ((0, 0), (0, th - j[3]), (0, tw - j[4])), mode="reflect") for j in chunk])
        with torch.inference_mode():
            prob = torch.sigmoid(model(torch.from_numpy(batch)))[:, 0].numpy()
        for k, (n, y0, x0, h, w, _) in enumerate(chunk):
            wt = np.outer(ramp(h), ramp(w))
            outs[n][0][y0 : y0 + h, x0 : x0 + w] += prob[k, :h, :w] * wt
            outs[n][1][y0 : y0 + h, x0 : x0 + w] += wt
    return [np.clip(acc / np.maximum(wsum, 1e-6), 0, 1) for acc, wsum in outs]


def test_predict_on_the_device_matches_the_numpy_path_tile_for_tile(segmenter, monkeypatch):
    # Small tiles so that a small field has seams, overlaps and a ragged last tile; the 40x70
    # image in the same batch is padded far beyond its own size (numpy's repeated reflection).
    monkeypatch.setattr(seg, "TILE", 128)
    field = phantoms.trichoscopy_phantom(5, size_px=(300, 260), mm_per_px=0.006).image
    small = np.random.default_rng(3).integers(0, 255, (40, 70, 3), dtype=np.uint8)
    new = segmenter.predict([field, small], batch_tiles=3)
    old = _numpy_predict(segmenter.model, [field, small], batch_tiles=3)
    for a, b in zip(new, old, strict=True):
        assert a.shape == b.shape and a.dtype == np.float32
        assert np.abs(a - b).max() < 1e-4
    assert old[0].max() > 0.9 and old[0].min() < 0.1  # a field with hair and skin, not a blank


def test_predict_gives_the_numbers_of_the_numpy_path_on_a_whole_field(segmenter):
    """A 1280x1024 field in one full-size tile, against the original numpy path (commit 0d81ee3)."""
    field = phantoms.trichoscopy_phantom(123, size_px=(1280, 1024), mm_per_px=0.006).image
    new = segmenter.predict([field])[0]
    old = _numpy_predict(segmenter.model, [field], batch_tiles=8)[0]
    assert new.shape == old.shape == (1024, 1280)
    assert np.abs(new - old).max() < 1e-4
    assert abs(float(new.astype(np.float64).sum()) - float(old.astype(np.float64).sum())) < 0.5
    assert old.max() > 0.9 and old.min() < 0.1


def test_channel_means_are_numpys_float32_means_bit_for_bit():
    images = [
        phantoms.trichoscopy_phantom(123, size_px=(1280, 1024), mm_per_px=0.006).image,
        np.random.default_rng(2).integers(0, 255, (333, 257, 3), dtype=np.uint8),
    ]
    for img in images:
        rgb = img[..., ::-1].astype(np.float32) / 255.0
        assert np.array_equal(seg.channel_means(img), rgb.reshape(-1, 3).mean(0))
    exact = (images[0][..., ::-1] / 255.0).reshape(-1, 3).mean(0)
    assert np.abs(seg.channel_means(images[0]) - exact).max() > 1e-4  # why they are kept: the weights saw these


def test_reflect_padding_is_numpys_even_beyond_the_tile():
    tile = torch.arange(3 * 5 * 2).reshape(3, 5, 2)
    padded = seg._pad_reflect(tile, 16, 7)
    assert np.array_equal(padded.numpy(), np.pad(tile.numpy(), ((0, 0), (0, 11), (0, 5)), mode="reflect"))
    assert seg._pad_reflect(tile, 5, 2) is tile


def test_the_overview_loss_charges_block_coverage_beyond_bce_and_has_no_dice():
    """An exact prediction costs its BCE and nothing more (a Dice term would add to it); one
    off by 0.1 everywhere pays 30 x 0.1² on top of its BCE for block means that do not add up."""
    target = torch.full((1, 1, 32, 32), 0.1)
    target[..., :16] = 0.8
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    exact = torch.logit(target)
    assert torch.isclose(training.overview_loss(exact, target), bce(exact, target))
    biased = torch.logit(target + 0.1)
    assert torch.isclose(training.overview_loss(biased, target) - bce(biased, target), torch.tensor(0.3), rtol=1e-3)


def test_an_overview_training_run_saves_its_own_network_beside_the_segmenter(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "OVERVIEW_CROP", 64)
    monkeypatch.setattr(training, "OVERVIEW_SIZE", (96, 80))
    cfg = seg.SegConfig(base=4, depth=2, version="tiny-test")
    seg.save_weights(seg.build_model(cfg), cfg, tmp_path)
    ov = seg.SegConfig(base=4, depth=2, version="tiny-overview")
    info = training.train(
        out_dir=tmp_path, n_images=2, max_steps=2, max_minutes=1, batch_size=2, cfg=ov, threads=1, overview=True
    )
    assert info["train_seed0"] == training.OVERVIEW_SEED0
    loaded = seg.load_segmenter("cpu", tmp_path)
    assert loaded.overview.cfg == ov and loaded.model_version == "tiny-test+tiny-overview"
    img = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert not np.array_equal(loaded.predict([img])[0], loaded.overview.predict([img])[0])


def test_the_segmenter_loss_charges_a_missed_thin_hair_by_its_length_not_its_area():
    """A 9 px hair found and a 1 px hair beside it missed: by area the thin hair is a tenth of
    the hair, by centre line (a 3 px tube inside the thick hair, 1 px inside the thin one) a
    quarter, and the centre-line term charges that quarter. Finding both leaves it near 0."""
    cov = np.zeros((64, 64), np.float32)
    cov[10:19] = 1  # a terminal hair 9 px wide
    cov[40] = 1  # a vellus hair 1 px wide
    lines = training.centre_line_target(cov)
    assert lines[13:16, 10:-10].all() and lines[40, 10:-10].all()
    assert not lines[39].any() and not lines[41].any()  # no wider than the vellus hair itself
    with_lines = torch.from_numpy(np.stack([cov, lines]))[None]
    coverage_only = with_lines[:, :1]
    thick_only = torch.where(torch.from_numpy(cov[None, None]) > 0, 10.0, -10.0)
    thick_only[..., 40, :] = -10.0
    missed = training.loss_fn(thick_only, with_lines) - training.loss_fn(thick_only, coverage_only)
    assert 0.2 < missed.item() / training.CENTRE_LINE_WEIGHT < 0.3
    both = torch.where(torch.from_numpy(cov[None, None]) > 0, 10.0, -10.0)
    assert (training.loss_fn(both, with_lines) - training.loss_fn(both, coverage_only)).item() < 0.05
