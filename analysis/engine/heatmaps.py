"""Pictures: coverage/density heatmap overlay and the change map, each with legend and scale."""

from __future__ import annotations

import cv2
import numpy as np

# thin (0) -> dense (1): red, orange, yellow, green, teal, blue (BGR)
_STOPS = np.array(
    [[40, 40, 220], [30, 140, 250], [40, 220, 240], [80, 190, 60], [170, 170, 30], [200, 90, 30]], np.float32
)
LOSS_BGR = (60, 30, 230)  # red-magenta
GAIN_BGR = (80, 220, 40)  # green


def colourise(value01: np.ndarray) -> np.ndarray:
    v = np.clip(value01, 0, 1) * (len(_STOPS) - 1)
    i = np.minimum(v.astype(int), len(_STOPS) - 2)
    f = (v - i)[..., None]
    return (_STOPS[i] * (1 - f) + _STOPS[i + 1] * f).astype(np.uint8)


def local_coverage(prob: np.ndarray, mm_per_px: float | None) -> np.ndarray:
    """Hair coverage averaged over about 1 mm (trichoscopy) or 1 cm (overview)."""
    small, sigma = _blurred_small(prob, mm_per_px)
    h, w = prob.shape
    return small if small.shape == prob.shape else cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _blurred_small(prob: np.ndarray, mm_per_px: float | None) -> tuple[np.ndarray, float]:
    """The Gaussian-averaged coverage, computed at a resolution reduced in step with its sigma.

    A blur of sigma 80+ px at full resolution cost 340-420 ms per 1280x1024 field; at 1/f size
    (sigma/f >= 8 px) it costs about 3 ms and differs from it by < 0.01 coverage (reflected
    borders at both scales), far below what a colour in the heatmap shows."""
    h, w = prob.shape
    sigma = max(h, w) / 40.0
    if mm_per_px:
        sigma = (1.0 if mm_per_px < 0.03 else 10.0) / mm_per_px / 2
    sigma = float(np.clip(sigma, 2, max(h, w) / 8))
    f = int(sigma // 8)
    if f < 2:
        return cv2.GaussianBlur(prob, (0, 0), sigma, borderType=cv2.BORDER_REFLECT), sigma
    small = cv2.resize(prob, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    # Averaging f x f pixels already blurred by a box of variance (f^2 - 1) / 12.
    rest = np.sqrt(max(sigma**2 - (f * f - 1) / 12.0, 0.25)) / f
    return cv2.GaussianBlur(small, (0, 0), rest, borderType=cv2.BORDER_REFLECT), sigma


def coverage_heatmap(image_bgr, prob, mm_per_px, valid=None, full_scale=0.8) -> np.ndarray:
    """Overlay where dense hair is green-blue and thin areas are yellow-red."""
    h, w = prob.shape
    small, _ = _blurred_small(prob, mm_per_px)
    # Colour the smooth map at its own resolution and enlarge the colours: the colour scale is
    # piecewise linear, so this differs from colouring every pixel by about one level.
    colour = colourise(small / full_scale)
    if colour.shape[:2] != (h, w):
        colour = cv2.resize(colour, (w, h), interpolation=cv2.INTER_LINEAR)
    out = cv2.addWeighted(image_bgr, 0.55, colour, 0.45, 0)
    if valid is not None and not valid.all():
        cv2.copyTo(image_bgr, (~valid).view(np.uint8), out)
    return _add_legend(out, mm_per_px, ("thin", "dense"), f"hair coverage 0-{int(full_scale * 100)}%")


# Dimming by tables: the same bytes as (x * 0.6).astype(uint8) in float32 and (x * 0.4) in
# float64, 10x faster on a full photo.
_DIM = (np.arange(256, dtype=np.float32) * 0.6).astype(np.uint8)
_DIMMER = (np.arange(256, dtype=np.uint8) * 0.4).astype(np.uint8)


def change_map(base_bgr, lost_mask, gained_mask, mm_per_px, overlap=None, tile_change=None) -> np.ndarray:
    """Baseline image dimmed; lost hair red, new hair green; optional per-tile shading."""
    out = cv2.LUT(base_bgr, _DIM)
    if overlap is not None and not overlap.all():
        cv2.copyTo(cv2.LUT(out, _DIMMER), (~overlap).view(np.uint8), out)
    if tile_change is not None:
        for (y0, y1, x0, x1), sign in tile_change:
            col = LOSS_BGR if sign < 0 else GAIN_BGR
            roi = out[y0:y1, x0:x1]
            roi[:] = cv2.addWeighted(roi, 0.7, np.full_like(roi, col), 0.3, 0)
    out[lost_mask] = LOSS_BGR
    out[gained_mask] = GAIN_BGR
    return _add_legend(out, mm_per_px, None, None, change=True)


def _add_legend(img, mm_per_px, ends, title, change=False) -> np.ndarray:
    h, w = img.shape[:2]
    band = max(40, h // 12)
    canvas = np.full((h + band, w, 3), 255, np.uint8)
    canvas[:h] = img
    fs = max(0.4, band / 70)
    y = h + band // 2
    if change:
        cv2.rectangle(canvas, (10, y - 8), (30, y + 8), LOSS_BGR, -1)
        cv2.putText(canvas, "hair lost", (36, y + 5), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), 1, cv2.LINE_AA)
        x = 36 + int(120 * fs)
        cv2.rectangle(canvas, (x, y - 8), (x + 20, y + 8), GAIN_BGR, -1)
        cv2.putText(canvas, "hair gained", (x + 26, y + 5), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), 1, cv2.LINE_AA)
    else:
        bw = min(w // 3, 300)
        ramp = colourise(np.tile(np.linspace(0, 1, bw), (16, 1)))
        canvas[y - 8 : y + 8, 60 : 60 + bw] = ramp
        cv2.putText(canvas, ends[0], (8, y + 5), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(canvas, ends[1], (66 + bw, y + 5), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(canvas, title, (60, y - 12), cv2.FONT_HERSHEY_SIMPLEX, fs * 0.8, (0, 0, 0), 1, cv2.LINE_AA)
    if mm_per_px:
        _scale_bar(canvas, w, y, mm_per_px, fs)
    return canvas


def _scale_bar(canvas, w, y, mm_per_px, fs):
    """A round-number bar about a fifth of the width."""
    target = w / 5 * mm_per_px
    nice = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
    mm = max([n for n in nice if n <= target] or [nice[0]])
    px = int(round(mm / mm_per_px))
    x1 = w - 12
    cv2.line(canvas, (x1 - px, y), (x1, y), (0, 0, 0), 3)
    label = f"{mm:g} mm" if mm >= 1 else f"{mm * 1000:.0f} um"
    cv2.putText(canvas, label, (x1 - px, y - 8), cv2.FONT_HERSHEY_SIMPLEX, fs * 0.8, (0, 0, 0), 1, cv2.LINE_AA)


# (flag, value) pairs for cv2.imencode
PNG_FAST = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_UP,
]


def to_png(img: np.ndarray) -> bytes:
    """Lossless PNG, fast settings: the "up" row filter with run-length deflate encodes a
    1280x1024 heatmap in about 40 ms at 1.41 MB (OpenCV's default: 44 ms, 1.51 MB; level 6:
    350 ms, 1.36 MB)."""
    ok, buf = cv2.imencode(".png", img, PNG_FAST)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


JPEG_QUALITY = 90


def to_jpeg(img: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """The pictures as stored by the workers: a 1280x1024 heatmap or change map in about 4 ms
    and 0.2 MB, against 20-40 ms and 1.4 MB as PNG. They are looked at, never measured again
    (the coverage map, which is, stays a lossless PNG)."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
