"""Hair counting and caliber classes from the coverage map, by locating shaft ends.

Why ends: every visible stretch of a hair has exactly two ends in the image, either a real
end (root or tip) or the point where the shaft leaves the field. Half a hair sits at each end,
so the number of hairs is the integral of an "end density" map, whatever the hairs do between
their ends: lying side by side for millimetres, crossing, or leaving one opening together
(the three cases that defeat a skeleton graph). A small U-Net (the counter) predicts that map
from the segmenter's coverage map plus a validity mask, at one canonical scale, so width in
pixels means the same micrometres for every dermoscope; the map is split into caliber bins,
which gives vellus and terminal fractions without measuring each hair separately.

The counter sees coverage, not the photo: the segmenter already absorbs skin, hair colour and
photo conditions, and training the counter on the segmenter's own output (not on the true
coverage) teaches it the segmenter's typical mistakes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .segmentation import WEIGHTS_DIR, UNet, load_network, save_network

CANON_MM_PER_PX = 0.008  # vellus (15 um) still 2 px wide; a 1280 px field at 2.5 um/px is 400 px
PAD = 8  # zero-validity frame: ends where a shaft leaves the field lie on the image edge
END_SIGMA = 1.5  # canonical px; only integrals of the map are used, so shape matters little
TARGET_SCALE = 20.0  # network output = TARGET_SCALE x density (keeps activations near 1)
BIN_EDGES_UM = (20, 30, 40, 50, 60, 70, 80)  # caliber bins; thresholds between edges interpolate
N_BINS = len(BIN_EDGES_UM) + 1
WIDTH_UNIT_UM = 100.0  # the width channel carries density x caliber / 100 um


@dataclass(frozen=True)
class CounterConfig:
    architecture: str = "unet"
    base: int = 8
    depth: int = 4
    inputs: tuple = ("coverage", "valid")
    outputs: str = f"end density x{TARGET_SCALE:g} per caliber bin {BIN_EDGES_UM} um, then x caliber/100 um"
    canonical_mm_per_px: float = CANON_MM_PER_PX
    version: str = "counter-b8-v1"


def build_counter(cfg: CounterConfig) -> UNet:
    model = UNet(len(cfg.inputs), cfg.base, cfg.depth)
    model.head = torch.nn.Conv2d(cfg.base, N_BINS + 1, 1)
    return model


def save_counter(model: UNet, cfg: CounterConfig, directory: Path, extra: dict | None = None) -> None:
    save_network(model, cfg, directory, "counter", extra)


def load_counter_weights(directory: Path) -> tuple[UNet, CounterConfig, dict]:
    return load_network(directory, "counter", CounterConfig, build_counter)


# ---------------------------------------------------------------- input (shared by training)


def canonical_input(prob: np.ndarray, valid: np.ndarray, mm_per_px: float) -> tuple[np.ndarray, float]:
    """Coverage and validity resampled to CANON_MM_PER_PX and framed by PAD px of nothing.

    Returns the 2xHxW network input and the scale (canonical px per input px)."""
    s = mm_per_px / CANON_MM_PER_PX
    h, w = prob.shape
    size = (max(1, round(w * s)), max(1, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR  # area keeps coverage mass when shrinking
    v = valid.astype(np.float32)
    cov = cv2.resize((prob * v).astype(np.float32), size, interpolation=interp)
    val = cv2.resize(v, size, interpolation=interp)
    x = np.stack([cov, val])
    return np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD))), s


# ---------------------------------------------------------------- inference


@dataclass
class EndCounts:
    hairs: float  # visible hairs (any part of the shaft in the field)
    per_bin: np.ndarray  # hairs per caliber bin (BIN_EDGES_UM)
    mean_caliber_um: float | None
    density_map: np.ndarray  # end density per input pixel (sums to hairs), for regional values

    def fraction_below(self, um: float) -> float | None:
        return _fraction(self.per_bin, um, below=True) if self.hairs > 0.5 else None

    def fraction_at_least(self, um: float) -> float | None:
        return _fraction(self.per_bin, um, below=False) if self.hairs > 0.5 else None

    def histogram(self, edges_um) -> list[int]:
        """Hairs per caliber bin, re-binned to the caller's edges (whole hairs)."""
        cum = [_cumulative(self.per_bin, e) for e in edges_um] + [float(self.per_bin.sum())]
        counts = np.maximum(np.diff([0.0] + cum), 0)
        # Largest remainders, so the whole hairs add up to the (rounded) count.
        whole = np.floor(counts).astype(int)
        short = int(round(counts.sum())) - int(whole.sum())
        for k in np.argsort(-(counts - whole))[: max(short, 0)]:
            whole[k] += 1
        return [int(c) for c in whole]


def _cumulative(per_bin: np.ndarray, um: float) -> float:
    """Hairs thinner than `um`, assuming calibers spread evenly inside each 10 um bin."""
    edges = (0.0,) + BIN_EDGES_UM + (BIN_EDGES_UM[-1] + 40.0,)
    total = 0.0
    for k in range(N_BINS):
        lo, hi = edges[k], edges[k + 1]
        total += per_bin[k] * float(np.clip((um - lo) / (hi - lo), 0, 1))
    return total


def _fraction(per_bin, um, below):
    n = float(per_bin.sum())
    if n <= 0:
        return None
    f = _cumulative(per_bin, um) / n
    return float(np.clip(f if below else 1 - f, 0, 1))


class Counter:
    def __init__(self, model: UNet, cfg: CounterConfig, device: str, meta: dict | None = None):
        self.cfg, self.device, self.meta = cfg, device, meta or {}
        self.version = cfg.version
        self.model = model.to(device).eval()
        self._lock = threading.Lock()

    @torch.inference_mode()
    def count(self, prob: np.ndarray, valid: np.ndarray, mm_per_px: float) -> EndCounts:
        x, s = canonical_input(prob, valid, mm_per_px)
        out = self.raw(x)
        dens = out[:N_BINS] / TARGET_SCALE  # not clipped at 0: clipping would turn noise into hairs
        width = out[N_BINS] / TARGET_SCALE
        per_bin = dens.sum((1, 2))  # half a hair at each of a stretch's two ends
        hairs = float(per_bin.sum())
        mean_cal = float(width.sum() / hairs * WIDTH_UNIT_UM) if hairs > 0.5 else None
        total = dens.sum(0)
        inner = total[PAD:-PAD, PAD:-PAD].copy()
        # Ends on the frame belong to the nearest image pixel; per input pixel for regions.
        inner[0] += total[:PAD, PAD:-PAD].sum(0)
        inner[-1] += total[-PAD:, PAD:-PAD].sum(0)
        inner[:, 0] += total[PAD:-PAD, :PAD].sum(1)
        inner[:, -1] += total[PAD:-PAD, -PAD:].sum(1)
        h, w = prob.shape
        per_px = cv2.resize(inner, (w, h), interpolation=cv2.INTER_LINEAR)
        per_px *= inner.sum() / max(float(per_px.sum()), 1e-9)
        return EndCounts(hairs, per_bin, mean_cal, per_px)

    @torch.inference_mode()
    def raw(self, x: np.ndarray) -> np.ndarray:
        """Network output for one 2xHxW input, padded to the U-Net's multiple."""
        m = self.model.multiple
        c, h, w = x.shape
        hp, wp = (h + m - 1) // m * m, (w + m - 1) // m * m
        t = torch.from_numpy(np.pad(x, ((0, 0), (0, hp - h), (0, wp - w)))[None]).to(self.device)
        with self._lock:
            y = self.model(t)
        return y[0, :, :h, :w].float().cpu().numpy()


_CACHE: dict[str, Counter | None] = {}
_CACHE_LOCK = threading.Lock()


def load_counter(device: str | None = None, weights_dir: Path | None = None) -> Counter | None:
    """The shipped counter, once per process and device; None when no counter is shipped
    (the hair graph then counts, as before the counter existed)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    directory = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    key = f"{device}:{directory}"
    with _CACHE_LOCK:
        if key not in _CACHE:
            if (directory / "counter.pt").exists():
                model, cfg, meta = load_counter_weights(directory)
                _CACHE[key] = Counter(model, cfg, device, meta)
            else:
                _CACHE[key] = None
        return _CACHE[key]


# ---------------------------------------------------------------- training targets


def end_targets(hairs_px, diameters_um, size_canon) -> np.ndarray:
    """Target maps for hairs given as canonical-px polylines (before PAD), on the padded canvas.

    Each visible stretch of a hair puts half a hair at each of its two ends, into the bin of
    the hair's caliber, and the same mass x caliber/100 um into the width channel."""
    w, h = size_canon
    out = np.zeros((N_BINS + 1, h + 2 * PAD, w + 2 * PAD), np.float32)
    for pts, diam in zip(hairs_px, diameters_um, strict=True):
        k = int(np.searchsorted(BIN_EDGES_UM, diam, side="right"))
        for x, y in visible_stretch_ends(pts, w, h):
            _splat(out[k], x + PAD, y + PAD, 0.5)
            _splat(out[N_BINS], x + PAD, y + PAD, 0.5 * diam / WIDTH_UNIT_UM)
    return out


def visible_stretch_ends(pts: np.ndarray, w: float, h: float) -> list[tuple[float, float]]:
    """Both ends of every stretch of a densely sampled polyline inside [0,w)x[0,h); a stretch
    cut by the edge ends at the crossing point (interpolated between the samples around it)."""
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    if not inside.any():
        return []
    ends = []
    d = np.diff(inside.astype(np.int8))
    starts = list(np.nonzero(d == 1)[0] + 1)
    stops = list(np.nonzero(d == -1)[0])
    if inside[0]:
        starts.insert(0, 0)
    if inside[-1]:
        stops.append(len(pts) - 1)
    for a, b in zip(starts, stops, strict=True):
        ends.append(_edge_point(pts, a, a - 1, w, h))
        ends.append(_edge_point(pts, b, b + 1, w, h))
    return ends


def _edge_point(pts, i_in, i_out, w, h):
    p = pts[i_in]
    if i_out < 0 or i_out >= len(pts):
        return float(p[0]), float(p[1])  # a real root or tip
    q = pts[i_out]
    lo, hi = 0.0, 1.0  # bisection on the segment from inside to outside
    for _ in range(12):
        mid = (lo + hi) / 2
        r = p + (q - p) * mid
        if 0 <= r[0] < w and 0 <= r[1] < h:
            lo = mid
        else:
            hi = mid
    r = p + (q - p) * lo
    return float(r[0]), float(r[1])


def _splat(channel: np.ndarray, x: float, y: float, mass: float) -> None:
    """Add a Gaussian of total `mass` centred at (x, y), clipped to the canvas."""
    r = int(np.ceil(3 * END_SIGMA))
    cx, cy = int(np.floor(x)), int(np.floor(y))
    x0, x1 = max(0, cx - r), min(channel.shape[1], cx + r + 2)
    y0, y1 = max(0, cy - r), min(channel.shape[0], cy + r + 2)
    if x1 <= x0 or y1 <= y0:
        return
    gx = np.exp(-0.5 * ((np.arange(x0, x1) + 0.5 - x) / END_SIGMA) ** 2)
    gy = np.exp(-0.5 * ((np.arange(y0, y1) + 0.5 - y) / END_SIGMA) ** 2)
    g = np.outer(gy, gx)
    # Normalise over the full kernel so an end on the canvas edge keeps its share only.
    full = 2 * np.pi * END_SIGMA**2
    channel[y0:y1, x0:x1] += (mass / full * g).astype(np.float32)
