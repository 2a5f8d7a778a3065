"""Align a follow-up photo to its baseline: ORB features + RANSAC homography, or the card."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_SIDE = 1200  # features at reduced size: fast and robust to blur and JPEG
MIN_INLIERS = 12


@dataclass
class Registration:
    ok: bool
    homography: np.ndarray | None  # follow-up px -> baseline px
    inliers: int
    reason: str = ""


def _prep(img: np.ndarray) -> tuple[np.ndarray, float]:
    """Grey (or a coverage map) equalised locally, so exposure and colour changes matter less."""
    g = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if g.dtype != np.uint8:
        g = np.clip(g * 255, 0, 255).astype(np.uint8)
    s = min(1.0, MAX_SIDE / max(g.shape))
    if s < 1:
        g = cv2.resize(g, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    g = cv2.createCLAHE(2.0, (8, 8)).apply(g)
    return g, s


def features(img: np.ndarray, n_features: int = 4000) -> tuple[tuple, np.ndarray | None, float]:
    """ORB keypoints and descriptors of an image (or coverage map) prepared by `_prep`, and its scale."""
    g, s = _prep(img)
    keypoints, descriptors = cv2.ORB_create(n_features, scaleFactor=1.2, nlevels=8, fastThreshold=10).detectAndCompute(
        g, None
    )
    return keypoints, descriptors, s


def register(baseline: np.ndarray, followup: np.ndarray, n_features: int = 4000) -> Registration:
    """Homography mapping follow-up pixels onto baseline pixels (images or coverage maps)."""
    kb, db, sb = features(baseline, n_features)
    kf, df, sf = features(followup, n_features)
    if db is None or df is None or len(kb) < MIN_INLIERS or len(kf) < MIN_INLIERS:
        return Registration(False, None, 0, "too few distinctive details to align the photos")
    query, train = ratio_matches(df, db)
    if len(query) < MIN_INLIERS:
        return Registration(False, None, len(query), "the photos show different areas (no matching details)")
    src = np.float32([kf[i].pt for i in query]) / sf
    dst = np.float32([kb[i].pt for i in train]) / sb
    hm, inl = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 4.0 / min(sb, sf), maxIters=5000, confidence=0.999)
    n = int(inl.sum()) if inl is not None else 0
    if hm is None or n < MIN_INLIERS or not _plausible(hm, followup.shape):
        return Registration(False, None, n, "the photos could not be aligned reliably")
    return Registration(True, hm, n)


_matching_device: str | None = None


def set_matching_device(device: str | None) -> None:
    """Match descriptors on this torch device ("cuda" in a GPU worker) instead of OpenCV's
    brute-force matcher on the CPU: the same matches, without the 75-200 ms of one core that
    4000 x 4000 Hamming distances cost."""
    global _matching_device
    _matching_device = device


def ratio_matches(df: np.ndarray, db: np.ndarray, device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (follow-up, baseline) of each follow-up descriptor's nearest baseline descriptor
    (Hamming), kept when it is clearly nearer than the second nearest (Lowe's ratio 0.8)."""
    device = device or _matching_device
    if device is not None and len(db) >= 2:
        return _ratio_matches_torch(df, db, device)
    matches = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(df, db, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    return np.array([m.queryIdx for m in good], np.intp), np.array([m.trainIdx for m in good], np.intp)


def _ratio_matches_torch(df, db, device):
    """The same matches as the brute-force matcher: Hamming distances from one matrix product of
    the descriptors' bits as +-1 (exact in any float format: integers up to 256). Where the ratio
    test passes, the nearest is strictly nearest, so its index cannot depend on tie order."""
    import torch

    def signs(d):
        bits = torch.from_numpy(np.ascontiguousarray(d)).to(device)[..., None] >> torch.arange(8, device=device)
        signs = (1 - 2 * (bits & 1)).reshape(len(d), -1)
        return signs.to(torch.float16 if device.startswith("cuda") else torch.float32)

    sf, sb = signs(df), signs(db)
    distance = (sf.shape[1] - sf @ sb.T) / 2
    nearest = torch.topk(distance, 2, dim=1, largest=False)
    d = nearest.values.float().cpu().numpy().astype(np.float64)
    keep = np.flatnonzero(d[:, 0] < 0.8 * d[:, 1])
    return keep.astype(np.intp), nearest.indices[:, 0].cpu().numpy()[keep].astype(np.intp)


def _plausible(hm, shape) -> bool:
    """Reject homographies that fold, flip or change scale wildly: those are RANSAC accidents."""
    h, w = shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)
    q = cv2.perspectiveTransform(corners, hm).reshape(-1, 2)
    area = cv2.contourArea(q.astype(np.float32))
    if not cv2.isContourConvex(q.astype(np.float32)):
        return False
    return 0.4 < area / (w * h) < 2.5


def register_by_card(hm_card_base: np.ndarray, hm_card_follow: np.ndarray) -> Registration:
    """Both photos show the card: follow-up px -> card mm -> baseline px."""
    return Registration(True, hm_card_base @ np.linalg.inv(hm_card_follow), 0)


def overlap_mask(hm: np.ndarray, base_shape, follow_shape, erode_px: int = 3) -> np.ndarray:
    """Baseline pixels that the follow-up also saw."""
    ones = np.ones(follow_shape[:2], np.uint8)
    m = cv2.warpPerspective(ones, hm, (base_shape[1], base_shape[0]), flags=cv2.INTER_NEAREST)
    if erode_px:
        m = cv2.erode(m, np.ones((2 * erode_px + 1, 2 * erode_px + 1), np.uint8))
    return m > 0
