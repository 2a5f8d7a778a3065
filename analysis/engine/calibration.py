"""Find the calibration card in a photo: scale (mm per pixel), camera tilt and a white-balance /
exposure correction from its grey patches. Without a card the caller may give the scale."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from . import card as card_mod

DETECT_MAX_SIDE = 2000  # ArUco on a 12 MP photo is slow; markers stay > 40 px at this size


@dataclass(frozen=True)
class Calibration:
    mm_per_px: float | None
    tilt_deg: float | None
    source: str  # "card" | "given" | "none"
    gains_bgr: tuple[float, float, float] | None = None  # multiply to neutralise the card's grey
    exposure_ratio: float | None = None  # measured / printed mid-grey (1 = as printed)
    card_quad_px: np.ndarray | None = field(default=None, compare=False)  # 4x2 card outline
    markers_found: int = 0

    def to_dict(self) -> dict:
        return {
            "mm_per_px": None if self.mm_per_px is None else round(float(self.mm_per_px), 6),
            "tilt_deg": None if self.tilt_deg is None else round(float(self.tilt_deg), 2),
            "source": self.source,
        }

    def card_mask(self, shape, scale: float = 1.0) -> np.ndarray | None:
        """Pixels covered by the card (excluded from scalp measurements), for an image of
        `shape` that is the calibrated photo resized by `scale`."""
        if self.card_quad_px is None:
            return None
        m = np.zeros(shape[:2], np.uint8)
        cv2.fillConvexPoly(m, np.round(self.card_quad_px * scale).astype(np.int32), 1)
        return cv2.dilate(m, np.ones((7, 7), np.uint8)) > 0


def _detector():
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    return cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(card_mod.ARUCO_DICT), params)


def find_card(image_bgr: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Homography card-mm -> image-px from the ArUco markers, and how many were found."""
    h, w = image_bgr.shape[:2]
    s = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = cv2.resize(image_bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else image_bgr
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    corners, ids, _ = _detector().detectMarkers(grey)
    if ids is None:
        return None
    src, dst = [], []
    for c, i in zip(corners, ids.ravel(), strict=True):
        if int(i) in card_mod.MARKER_IDS:
            src.append(card_mod.marker_corners_mm(int(i)))
            dst.append(c.reshape(4, 2) / s)
    if not src:
        return None
    src, dst = np.vstack(src), np.vstack(dst)
    if len(src) == 4:
        hm = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    else:
        hm, _ = cv2.findHomography(src, dst, 0)
    return (hm, len(src) // 4) if hm is not None else None


def _jacobian(hm, pt):
    d = 1.0
    p = cv2.perspectiveTransform(np.array([[pt, pt + [d, 0], pt + [0, d]]], np.float64), hm)[0]
    return np.stack([(p[1] - p[0]) / d, (p[2] - p[0]) / d], 1)


def scale_and_tilt(hm: np.ndarray) -> tuple[float, float]:
    """mm per px (area-preserving) and tilt from the foreshortening at the card centre.

    Under near-orthographic viewing a plane tilted by t shrinks one direction by cos t, so
    the ratio of the Jacobian's singular values gives the tilt without knowing the lens."""
    centre = np.array([card_mod.CARD_W_MM / 2, card_mod.CARD_H_MM / 2])
    sv = np.linalg.svd(_jacobian(hm, centre), compute_uv=False)
    mm_per_px = 1.0 / float(np.sqrt(sv[0] * sv[1]))
    tilt = float(np.degrees(np.arccos(np.clip(sv[1] / sv[0], 0, 1))))
    return mm_per_px, tilt


def _patch_mean(image_bgr, hm, rect):
    x, y, w, h = rect
    inner = np.array(
        [
            [x + w * 0.25, y + h * 0.25],
            [x + w * 0.75, y + h * 0.25],
            [x + w * 0.75, y + h * 0.75],
            [x + w * 0.25, y + h * 0.75],
        ],
        np.float64,
    )
    quad = cv2.perspectiveTransform(inner.reshape(1, -1, 2), hm)[0]
    m = np.zeros(image_bgr.shape[:2], np.uint8)
    cv2.fillConvexPoly(m, np.round(quad).astype(np.int32), 1)
    if m.sum() < 4:
        return None
    return np.array(cv2.mean(image_bgr, mask=m)[:3])


def colour_reference(image_bgr, hm) -> tuple[tuple[float, float, float] | None, float | None]:
    """Per-channel gains that make the printed mid-grey neutral at its printed level."""
    rects = {name: r for name, r, _ in card_mod.patch_rects_mm()}
    grey = _patch_mean(image_bgr, hm, rects["grey2"])
    if grey is None or np.any(grey < 5):
        return None, None
    target = float(card_mod.GREY_LEVELS[2])
    gains = tuple(float(target / g) for g in grey)
    return gains, float(np.mean(grey) / target)


def calibrate(image_bgr: np.ndarray, mm_per_px: float | None = None) -> Calibration:
    """Card first (it also gives tilt and colour); otherwise the caller's scale; else none."""
    found = find_card(image_bgr)
    if found is not None:
        hm, n = found
        scale, tilt = scale_and_tilt(hm)
        gains, expo = colour_reference(image_bgr, hm)
        outline = np.array(
            [[0, 0], [card_mod.CARD_W_MM, 0], [card_mod.CARD_W_MM, card_mod.CARD_H_MM], [0, card_mod.CARD_H_MM]],
            np.float64,
        )
        quad = cv2.perspectiveTransform(outline.reshape(1, -1, 2), hm)[0]
        if mm_per_px is not None:
            # A dermoscope's fixed scale beats a card seen at an angle; keep the card's colour.
            return Calibration(float(mm_per_px), tilt, "given", gains, expo, quad, n)
        return Calibration(scale, tilt, "card", gains, expo, quad, n)
    if mm_per_px is not None:
        return Calibration(float(mm_per_px), None, "given")
    return Calibration(None, None, "none")
