"""Train the segmenter on phantoms (fixed seed, time-boxed so 2 CPU cores finish in minutes).

Training seeds live in their own range (TRAIN_SEED0 upwards) so the benchmark's phantoms are
never seen in training.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from . import metrics, phantoms
from .segmentation import (
    OVERVIEW_NAME,
    OVERVIEW_VERSION,
    WEIGHTS_DIR,
    SegConfig,
    build_model,
    load_weights,
    preprocess,
    save_network,
)

log = logging.getLogger(__name__)
TRAIN_SEED0 = 10_000_000
CROP = 128
OVERVIEW_SEED0 = 40_000_000  # the overview network's own phantoms (train(overview=True))
OVERVIEW_SIZE = (512, 384)
OVERVIEW_CROP = 192  # more context than a trichoscopy crop: bare skin beside hair tells which is which
CENTRE_LINE_WEIGHT = 1.0  # skeleton recall beside BCE + 0.5 Dice (Kirchhoff et al., ECCV 2024)
OVERVIEW_BLOCK = 16  # px: the scale at which coverage must add up (scalp visibility is an area mean)


def _sample(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One training image and coverage target; mostly trichoscopy, some overview scale."""
    rng = np.random.default_rng(seed)
    size = (320, 320)
    if rng.random() < 0.65:
        # Harder photo conditions than the benchmark's range, so the network generalises; low
        # contrast pairings (any hair on very dark skin, light hair on light skin) are
        # oversampled because they are where segmentation fails first.
        kw = {}
        u = rng.random()
        if u < 0.25:
            kw = {"skin": str(rng.choice(["brown", "very_dark"]))}
        elif u < 0.4:
            kw = {"skin": str(rng.choice(["very_light", "light"])), "hair": str(rng.choice(["blonde", "grey"]))}
        p = phantoms.trichoscopy_phantom(seed, size_px=size, strength=float(rng.uniform(0.3, 1.4)), **kw)
    else:
        view = rng.choice(["crown", "part_line", "hairline", "temple_left"])
        p = phantoms.overview_phantom(seed, view, size_px=size, strength=float(rng.uniform(0.3, 1.2)), with_card=False)
    return p.image, p.coverage


def _overview_sample(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One phone-photo-scale training image (0.12-0.2 mm/px: a hair is a fraction of a pixel).
    Light hair on darker skin is oversampled: there hair is the bright part of the texture, which
    a network that learned "hair is dark" reads inverted."""
    rng = np.random.default_rng(seed)
    view = str(rng.choice(phantoms.OVERVIEW_VIEWS))
    kw = {}
    if rng.random() < 0.3:
        kw = {"skin": str(rng.choice(["tan", "brown", "very_dark"])), "hair": str(rng.choice(["blonde", "grey"]))}
    p = phantoms.overview_phantom(
        seed, view, size_px=OVERVIEW_SIZE, strength=float(rng.uniform(0.3, 1.2)), with_card=False, **kw
    )
    return p.image, p.coverage


def build_pool(
    n: int, seed0: int = TRAIN_SEED0, sample=_sample, with_centre_lines: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed images and their targets: coverage, and with `with_centre_lines` a second
    channel marking the hairs' centre lines (see loss_fn)."""
    xs, ys = [], []
    for i in range(n):
        img, cov = sample(seed0 + i)
        xs.append(preprocess(img))
        ys.append(np.stack([cov, centre_line_target(cov)]) if with_centre_lines else cov[None])
        if (i + 1) % 50 == 0:
            log.info("generated %d/%d phantoms", i + 1, n)
    return np.stack(xs), np.stack(ys)


def _batch(rng, xs, ys, bs, crop=CROP):
    idx = rng.integers(0, len(xs), bs)
    h, w = xs.shape[2:]
    bx = np.empty((bs, 3, crop, crop), np.float32)
    by = np.empty((bs, ys.shape[1], crop, crop), np.float32)
    for k, i in enumerate(idx):
        y0, x0 = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        bx[k], by[k] = _augment(rng, xs[i, :, y0 : y0 + crop, x0 : x0 + crop], ys[i, :, y0 : y0 + crop, x0 : x0 + crop])
    return torch.from_numpy(bx), torch.from_numpy(by)


def _augment(rng, a, b):
    """The same random quarter turn and mirror for an input crop and its target (CxHxW)."""
    r = int(rng.integers(4))
    a, b = np.rot90(a, r, (1, 2)), np.rot90(b, r, (1, 2))
    if rng.random() < 0.5:
        a, b = a[:, :, ::-1], b[:, :, ::-1]
    return a, b


def centre_line_target(coverage: np.ndarray) -> np.ndarray:
    """The hairs' centre lines (skeleton of coverage > 0.5) widened to 3 px but kept inside
    the hair (coverage > 0.5), as float32 0/1: a tube wider than a 1 px vellus hair would
    teach the network to draw it wider, and its caliber would read high."""
    inside = coverage > 0.5
    skel = metrics.skeletonize(inside).astype(np.uint8)
    return ((cv2.dilate(skel, np.ones((3, 3), np.uint8)) > 0) & inside).astype(np.float32)


def loss_fn(logits, target):
    """BCE on soft coverage (keeps widths calibrated) + soft Dice (keeps thin hairs), and with
    a centre-line channel in `target` the share of centre-line length the network misses
    (skeleton recall). BCE and Dice weigh a hair by its area, so a vellus hair a fifth as wide
    as a terminal one counts a fifth as much, yet each is one hair to count; on the benchmark's
    fields the hair graph found no chain for 69% of vellus hairs against 24% of thicker ones.
    The centre line is a 3 px tube inside a hair (1 px inside a 1 px one), so per length a
    vellus hair weighs a third of a terminal one here, not a fifth or less."""
    cov = target[:, :1]
    bce = nn.functional.binary_cross_entropy_with_logits(logits, cov)
    p = torch.sigmoid(logits)
    inter = (p * cov).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + cov.sum((1, 2, 3)) + 1)
    loss = bce + 0.5 * dice.mean()
    if target.shape[1] > 1:
        lines = target[:, 1:]
        loss = loss + CENTRE_LINE_WEIGHT * (1 - (p * lines).sum() / (lines.sum() + 1))
    return loss


def overview_loss(logits, target):
    """BCE on soft coverage + the squared error of coverage averaged over 16 px blocks. No Dice:
    at phone-photo scale every pixel is a mixture, and Dice rewards pushing mixtures to 0 or 1,
    which is what made scalp visibility track the truth with a slope of 0.25."""
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    block = nn.functional.avg_pool2d(p, OVERVIEW_BLOCK) - nn.functional.avg_pool2d(target, OVERVIEW_BLOCK)
    return bce + 30.0 * (block**2).mean()


def fit(model, next_batch, loss_of, *, lr, min_lr, max_steps, max_minutes, t0, log_every) -> list[float]:
    """AdamW with a cosine schedule, stopped by step count or wall time (so 2 CPU cores finish
    in minutes); leaves the model in eval mode and returns the loss of every step."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    deadline = t0 + max_minutes * 60
    losses: list[float] = []
    while len(losses) < max_steps and time.time() < deadline:
        # Cosine schedule on the expected number of steps, re-estimated from the time left.
        frac = min(1.0, max(len(losses) / max_steps, (time.time() - t0) / (max_minutes * 60)))
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * frac)) + min_lr
        bx, by = next_batch()
        loss = loss_of(model(bx), by)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if len(losses) % log_every == 0:
            log.info(
                "step %d loss %.4f lr %.2e (%.0f s)",
                len(losses),
                np.mean(losses[-log_every:]),
                opt.param_groups[0]["lr"],
                time.time() - t0,
            )
    model.eval()
    return losses


def train(
    *,
    out_dir: Path = WEIGHTS_DIR,
    n_images: int = 400,
    max_steps: int = 3000,
    max_minutes: float = 18.0,
    batch_size: int = 10,
    base: int = 8,
    seed: int = 0,
    threads: int = 2,
    cfg: SegConfig | None = None,
    init_from: Path | None = None,
    lr: float = 3e-3,
    overview: bool = False,
    centre_lines: bool = False,
) -> dict:
    """Train the trichoscopy segmenter, or with `overview` the phone-photo network (saved as
    `OVERVIEW_NAME`, its own phantoms, crops and loss; see overview_loss). `centre_lines` adds
    the skeleton-recall term to the segmenter's loss (loss_fn); the shipped weights were trained
    without it (ENGINE.md step 4 says what it did)."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    cfg = cfg or (SegConfig(base=base, version=OVERVIEW_VERSION) if overview else SegConfig(base=base))
    seed0, crop = (OVERVIEW_SEED0, OVERVIEW_CROP) if overview else (TRAIN_SEED0, CROP)
    t0 = time.time()
    xs, ys = build_pool(
        n_images, seed0, _overview_sample if overview else _sample, with_centre_lines=centre_lines and not overview
    )
    log.info("pool ready in %.0f s", time.time() - t0)
    model = build_model(cfg).train()
    if init_from is not None:
        # Fine-tuning: start from earlier weights (same architecture) on the current data mix.
        model.load_state_dict(load_weights(Path(init_from))[0].state_dict())
        log.info("initialised from %s", init_from)
    losses = fit(
        model,
        lambda: _batch(rng, xs, ys, batch_size, crop),
        overview_loss if overview else loss_fn,
        lr=lr,
        min_lr=2e-5 if overview else 5e-5,
        max_steps=max_steps,
        max_minutes=max_minutes,
        t0=t0,
        log_every=50,
    )
    info = {
        "steps": len(losses),
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "train_images": n_images,
        "train_seed0": seed0,
        "seed": seed,
        "minutes": round((time.time() - t0) / 60, 1),
        "init_from": None if init_from is None else Path(init_from).name,
        "lr": lr,
        "loss": "overview_loss" if overview else ("bce+dice+centre-line recall" if centre_lines else "bce+dice"),
    }
    save_network(model, cfg, Path(out_dir), OVERVIEW_NAME if overview else "unet", info)
    log.info("saved weights to %s: %s", out_dir, info)
    return info


# ---------------------------------------------------------------- counter (hair ends)

COUNTER_SEED0 = 30_000_000  # its own range: neither the benchmark's nor the segmenter's phantoms
COUNTER_CROP = 128
COUNT_MARGIN = 16  # crop border left out of the count term (see counter_loss)


def counter_sample(seed: int, segmenter) -> tuple[np.ndarray, np.ndarray]:
    """One counter training canvas: the segmenter's coverage of a trichoscopy phantom at the
    canonical scale, and its end-density targets. Fields of 1.6-2.8 mm at 2.5-12 um/px."""
    from . import counting
    from .pipeline import device_overlay_mask

    rng = np.random.default_rng(seed)
    mm = float(rng.uniform(0.0025, 0.012))
    field_mm = float(rng.uniform(1.6, 2.8))
    side = int(min(1100, field_mm / mm))
    size = (side, int(side * rng.uniform(0.75, 1.0)))
    kw = {}
    u = rng.random()
    if u < 0.2:
        kw = {"skin": str(rng.choice(["brown", "very_dark"]))}
    elif u < 0.35:
        kw = {"skin": str(rng.choice(["very_light", "light"])), "hair": str(rng.choice(["blonde", "grey"]))}
    if rng.random() < 0.3:
        kw["fu_per_cm2"] = float(rng.uniform(90, 160))  # crowded fields: where counting fails first
    p = phantoms.trichoscopy_phantom(seed, size_px=size, mm_per_px=mm, strength=float(rng.uniform(0.3, 1.3)), **kw)
    valid = ~device_overlay_mask(p.image)
    prob = segmenter.predict([p.image])[0] * valid
    x, s = counting.canonical_input(prob, valid, p.mm_per_px)
    w_c, h_c = x.shape[2] - 2 * counting.PAD, x.shape[1] - 2 * counting.PAD
    polylines, diams = [], []
    for hair in p.scalp.hairs:
        pts = phantoms._project(p.world_to_image, phantoms._dense(hair.points_mm, 0.004)) * s
        if pts[:, 0].max() < -2 or pts[:, 1].max() < -2 or pts[:, 0].min() > w_c + 2 or pts[:, 1].min() > h_c + 2:
            continue
        polylines.append(pts)
        diams.append(hair.diameter_um)
    y = counting.end_targets(polylines, diams, (w_c, h_c))
    return x.astype(np.float32), y


def counter_pool(n: int, segmenter, seed0: int = COUNTER_SEED0, cache: Path | None = None):
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=True)
        return list(z["xs"]), list(z["ys"])
    xs, ys = [], []
    for i in range(n):
        x, y = counter_sample(seed0 + i, segmenter)
        xs.append(x)
        ys.append(y)
        if (i + 1) % 25 == 0:
            log.info("counter pool %d/%d", i + 1, n)
    if cache is not None:
        arr_x, arr_y = np.empty(n, object), np.empty(n, object)
        arr_x[:], arr_y[:] = xs, ys
        np.savez(cache, xs=arr_x, ys=arr_y)
    return xs, ys


def _counter_batch(rng, xs, ys, bs):
    c = COUNTER_CROP
    bx = np.zeros((bs, xs[0].shape[0], c, c), np.float32)
    by = np.zeros((bs, ys[0].shape[0], c, c), np.float32)
    # Crops may hang over the canvas by up to COUNT_MARGIN px more than its frame, so the
    # field's edge, where every shaft leaving the field puts half a hair, also falls inside the
    # counted part of a crop (counter_loss leaves each crop's own edge band out).
    m = COUNT_MARGIN + 8
    for k in range(bs):
        i = int(rng.integers(len(xs)))
        x = np.pad(xs[i], ((0, 0), (m, m), (m, m)))
        y = np.pad(ys[i], ((0, 0), (m, m), (m, m)))
        h, w = x.shape[1:]
        y0 = int(rng.integers(0, max(1, h - c + 1)))
        x0 = int(rng.integers(0, max(1, w - c + 1)))
        a, b = _augment(rng, x[:, y0 : y0 + c, x0 : x0 + c], y[:, y0 : y0 + c, x0 : x0 + c])
        bx[k, :, : a.shape[1], : a.shape[2]] = a
        by[k, :, : b.shape[1], : b.shape[2]] = b
    return torch.from_numpy(bx), torch.from_numpy(by)


def counter_loss(out, target):
    """Per-pixel squared error (where the ends are) + squared error of each crop's counts
    per channel (how many there are: the number that matters).

    The count term alone can be met by a positive offset inside the crop balanced by a
    negative band along its edges, which the network can locate through its zero padding;
    at inference, on fields far larger than a crop, that offset adds up to many phantom hairs.
    So the count term leaves out the crop's edge band, and the pixel term, which penalises any
    offset anywhere, is weighted up."""
    from .counting import TARGET_SCALE

    t = target * TARGET_SCALE
    pix = ((out - t) ** 2).sum((2, 3)).mean() / TARGET_SCALE
    m = COUNT_MARGIN
    inner_out, inner_t = out[:, :, m:-m, m:-m], t[:, :, m:-m, m:-m]
    cnt = (((inner_out.sum((2, 3)) - inner_t.sum((2, 3))) / TARGET_SCALE) ** 2).mean()
    return 10 * pix + cnt


def train_counter(
    *,
    out_dir: Path = WEIGHTS_DIR,
    n_images: int = 400,
    max_steps: int = 6000,
    max_minutes: float = 20.0,
    batch_size: int = 12,
    seed: int = 0,
    threads: int = 2,
    lr: float = 3e-3,
    init_from: Path | None = None,
    pool_cache: Path | None = None,
) -> dict:
    from . import counting
    from .segmentation import load_segmenter

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    seg = load_segmenter("cpu")
    xs, ys = counter_pool(n_images, seg, cache=pool_cache)
    log.info("counter pool ready in %.0f s", time.time() - t0)
    t0 = time.time()
    cfg = counting.CounterConfig()
    model = counting.build_counter(cfg).train()
    if init_from is not None:
        model.load_state_dict(counting.load_counter_weights(Path(init_from))[0].state_dict())
    losses = fit(
        model,
        lambda: _counter_batch(rng, xs, ys, batch_size),
        counter_loss,
        lr=lr,
        min_lr=3e-5,
        max_steps=max_steps,
        max_minutes=max_minutes,
        t0=t0,
        log_every=100,
    )
    info = {
        "steps": len(losses),
        "final_loss": float(np.mean(losses[-100:])) if losses else None,
        "train_images": n_images,
        "train_seed0": COUNTER_SEED0,
        "seed": seed,
        "minutes": round((time.time() - t0) / 60, 1),
        "lr": lr,
        "segmenter": seg.model_version,
        "init_from": None if init_from is None else Path(init_from).name,
    }
    counting.save_counter(model, cfg, Path(out_dir), info)
    log.info("saved counter to %s: %s", out_dir, info)
    return info
