"""Synthetic scalp images with exact ground truth.

A phantom is a scalp ("world", in millimetres) with explicit hairs, imaged by a virtual camera
(a homography from world millimetres to image pixels) under chosen photo conditions. Because
every hair is known, every metric has an exact truth: count, density, follicular units,
per-hair caliber, coverage (scalp visibility) and, for the part-line view, part width.
Follow-ups re-image the same world after removing or adding hairs, with new conditions and a
small camera move, so change detection has an exact truth as well.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import card as card_mod

# RGB skin tones from very light to very dark (roughly Fitzpatrick I..VI).
SKIN_TONES_RGB = {
    "very_light": (236, 208, 192),
    "light": (226, 186, 160),
    "medium": (192, 142, 112),
    "tan": (156, 104, 78),
    "brown": (108, 72, 52),
    "very_dark": (62, 43, 36),
}
HAIR_COLOURS_RGB = {
    "black": (22, 20, 20),
    "brown": (78, 52, 34),
    "blonde": (205, 170, 115),
    "grey": (190, 188, 185),
}
# Red and auburn hair (natural, or dyed with henna or red dyes): hues the four colours above do
# not span. Drawn only when asked for by name, so every seed keeps the phantom it always had.
RED_HAIR_COLOURS_RGB = {
    "red": (160, 62, 30),
    "auburn": (110, 45, 25),
}
NAMED_HAIR_COLOURS_RGB = {**HAIR_COLOURS_RGB, **RED_HAIR_COLOURS_RGB}  # every colour asked for by name
OVERVIEW_VIEWS = ("crown", "part_line", "hairline", "temple_left", "temple_right")  # make_overview_scalp's views
FU_SIZE_P = (0.40, 0.35, 0.18, 0.07)  # 1, 2, 3, 4 hairs per follicular unit


@dataclass
class Hair:
    points_mm: np.ndarray  # (N, 2) polyline in world millimetres
    diameter_um: float
    fu_id: int
    pigment: float  # 1 = full hair colour, lower = closer to skin (vellus)


@dataclass
class Scalp:
    hairs: list[Hair]
    skin_rgb: tuple[int, int, int]
    hair_rgb: tuple[int, int, int]
    openings_mm: np.ndarray  # (K, 2) follicle openings (including empty ones)
    flakes: list[np.ndarray]  # polygons in world mm
    texture_seed: int
    view: str = "trichoscopy"
    part_width_mm: float | None = None
    extent_mm: tuple[float, float, float, float] = (0, 0, 1, 1)  # x0, y0, x1, y1
    # Dermoscopic signs that are not hair (honeycomb pigment network, dotted vessels, yellow
    # dots), 0-1: how strongly they show (0: none). See _draw_skin_signs.
    signs: float = 0.0


@dataclass
class Conditions:
    exposure: float = 1.0  # multiplicative, 0.75..1.25
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)  # BGR gains
    vignette: float = 0.0  # fractional darkening at the corners
    gradient: float = 0.0  # uneven light, fractional left-right ramp
    blur_sigma_px: float = 0.0
    noise_sigma: float = 0.0  # in 8-bit levels
    jpeg_quality: int = 95
    scale: float = 1.0  # >1 means the camera is further away (more mm per pixel)
    rotation_deg: float = 0.0
    tilt_deg: float = 0.0
    tilt_axis_deg: float = 0.0
    shift_mm: tuple[float, float] = (0.0, 0.0)
    stamp: bool = True
    with_card: bool = False
    # A dermoscope whose lens images a disc: radius / half the frame's height (0: the whole
    # frame is scalp). 1 inscribes the disc; up to about 1.67 it still clips the corners.
    aperture: float = 0.0
    # Non-polarised light: a specular streak along each hair shaft's middle, at most this share
    # of the way to white (0: polarised, no streak).
    shine: float = 0.0


SURROUND_LEVEL = 6.0  # what a camera records outside a dermoscope's lens: black plus sensor offset


def field_of_view(size_px, cond: Conditions) -> np.ndarray:
    """Share of each pixel inside the lens's disc (anti-aliased), all ones without one."""
    w, h = size_px
    if cond.aperture <= 0:
        return np.ones((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx + 0.5 - w / 2, yy + 0.5 - h / 2)
    return np.clip(cond.aperture * h / 2 - r + 0.5, 0, 1).astype(np.float32)


@dataclass
class Phantom:
    image: np.ndarray  # BGR uint8 as a camera would deliver it
    coverage: np.ndarray  # float32 0..1 true hair coverage per pixel (segmentation target)
    truth: dict
    world_to_image: np.ndarray  # 3x3 homography world mm -> image px
    mm_per_px: float  # nominal scale (what a caller would pass)
    view: str
    scalp: Scalp
    conditions: Conditions
    regions_truth: dict = field(default_factory=dict)


# ---------------------------------------------------------------- scalp generation


def _hair_polyline(rng, root, angle, length_mm, step_mm, curvature):
    n = max(2, int(length_mm / step_mm) + 1)
    turns = curvature * step_mm + rng.normal(0, 0.015, n) * np.sqrt(step_mm / 0.05)
    angles = angle + np.cumsum(turns)
    steps = np.stack([np.cos(angles), np.sin(angles)], 1) * step_mm
    pts = root + np.vstack([[0, 0], np.cumsum(steps[:-1], 0)])
    return pts.astype(np.float64)


def _diameter_and_pigment(rng, miniaturisation):
    u = rng.random()
    if u < miniaturisation * 0.6:
        return rng.uniform(15, 38), rng.uniform(0.35, 0.7)  # vellus: thin, little pigment
    if u < miniaturisation:
        return rng.uniform(40, 60), rng.uniform(0.7, 0.95)
    return rng.uniform(60, 105), 1.0


def make_trichoscopy_scalp(
    rng: np.random.Generator,
    *,
    extent_mm,
    skin=None,
    hair=None,
    fu_per_cm2=None,
    miniaturisation=None,
    clipped=None,
    signs: float = 0.0,
) -> Scalp:
    """A dermoscopy-scale patch of scalp with follicular units of 1-4 hairs, and with `signs` > 0
    the scalp's own dermoscopic signs (see _draw_skin_signs; drawn without using rng, so every
    seed keeps its hairs)."""
    x0, y0, x1, y1 = extent_mm
    skin = skin or rng.choice(list(SKIN_TONES_RGB))
    hair = hair or rng.choice(list(HAIR_COLOURS_RGB))
    fu_per_cm2 = fu_per_cm2 if fu_per_cm2 is not None else rng.uniform(35, 110)
    miniaturisation = miniaturisation if miniaturisation is not None else rng.uniform(0.05, 0.6)
    clipped = clipped if clipped is not None else rng.random() < 0.5
    area_cm2 = (x1 - x0) * (y1 - y0) / 100.0
    n_fu = rng.poisson(fu_per_cm2 * area_cm2)
    centres = _spread_points(rng, n_fu, extent_mm, min_dist=0.25)
    flow = rng.uniform(0, 2 * np.pi)
    hairs: list[Hair] = []
    for fu_id, c in enumerate(centres):
        size = rng.choice(4, p=FU_SIZE_P) + 1
        base = flow + rng.normal(0, 0.6)
        for k in range(size):
            diam, pig = _diameter_and_pigment(rng, miniaturisation)
            if diam < 40:
                length = rng.uniform(0.3, 1.5)
            elif clipped:
                length = rng.uniform(0.4, 1.3)
            else:
                length = rng.uniform(2.0, 8.0)
            angle = base + (k - (size - 1) / 2) * rng.uniform(0.25, 0.5)
            root = c + rng.normal(0, 0.012, 2)
            pts = _hair_polyline(rng, root, angle, length, 0.04, rng.normal(0, 0.25))
            hairs.append(Hair(pts, float(diam), fu_id, float(pig)))
    n_empty = rng.poisson(8 * area_cm2)
    empties = _spread_points(rng, n_empty, extent_mm, 0.2)
    openings = np.vstack([centres.reshape(-1, 2), empties.reshape(-1, 2)])
    flakes = _make_flakes(rng, extent_mm, rng.poisson(rng.uniform(0, 25) * area_cm2))
    return Scalp(
        hairs,
        SKIN_TONES_RGB[skin],
        NAMED_HAIR_COLOURS_RGB[hair],
        openings,
        flakes,
        int(rng.integers(1 << 30)),
        "trichoscopy",
        None,
        tuple(extent_mm),
        float(signs),
    )


def _spread_points(rng, n, extent_mm, min_dist):
    """Roughly uniform points that keep a minimum distance (follicles do not overlap)."""
    x0, y0, x1, y1 = extent_mm
    pts: list[np.ndarray] = []
    tries = 0
    while len(pts) < n and tries < n * 30:
        tries += 1
        p = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        if pts and np.min(np.hypot(*(np.asarray(pts) - p).T)) < min_dist:
            continue
        pts.append(p)
    return np.asarray(pts, np.float64).reshape(-1, 2)


def _make_flakes(rng, extent_mm, n):
    x0, y0, x1, y1 = extent_mm
    flakes = []
    for _ in range(n):
        c = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        k = rng.integers(5, 9)
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.05, 0.25) * rng.uniform(0.5, 1.0, k)
        flakes.append(c + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1))
    return flakes


def make_overview_scalp(
    rng: np.random.Generator,
    view: str,
    *,
    extent_mm,
    skin=None,
    hair=None,
    density_per_cm2=None,
    thinning=None,
    part_width_mm=None,
) -> Scalp:
    """A head-scale patch for the standard views; hairs are long strands lying on the scalp."""
    x0, y0, x1, y1 = extent_mm
    skin = skin or rng.choice(list(SKIN_TONES_RGB))
    hair = hair or rng.choice(list(HAIR_COLOURS_RGB))
    density = density_per_cm2 if density_per_cm2 is not None else rng.uniform(60, 200)
    thinning = thinning if thinning is not None else rng.uniform(0.0, 0.9)
    cx, cy = (x0 + x1) / 2 + rng.normal(0, 5), (y0 + y1) / 2 + rng.normal(0, 5)
    area_cm2 = (x1 - x0) * (y1 - y0) / 100.0
    n = rng.poisson(density * area_cm2)
    roots = np.stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)], 1)
    part_angle = rng.uniform(-0.3, 0.3) + np.pi / 2  # part runs roughly top-bottom
    keep = np.ones(n, bool)
    if view == "crown":
        r = np.hypot(roots[:, 0] - cx, roots[:, 1] - cy)
        radius = rng.uniform(15, 40)
        keep = rng.random(n) > thinning * np.clip(1.2 - r / radius, 0, 1)
    elif view in ("hairline", "temple_left", "temple_right"):
        # Hairless forehead above a curved hairline; deeper on one side for temples.
        u = (roots[:, 0] - x0) / (x1 - x0)
        line = y0 + (y1 - y0) * (
            0.25
            + thinning
            * 0.25
            * (np.cos(np.pi * u) ** 2 if view == "hairline" else (u if view == "temple_right" else 1 - u))
        )
        keep = roots[:, 1] > line
    elif view == "part_line":
        part_width_mm = part_width_mm if part_width_mm is not None else rng.uniform(1.0, 8.0)
        normal = np.array([np.cos(part_angle - np.pi / 2), np.sin(part_angle - np.pi / 2)])
        d = (roots - [cx, cy]) @ normal
        keep = np.abs(d) > part_width_mm / 2
    roots = roots[keep]
    hairs = []
    for i, rt in enumerate(roots):
        diam, pig = _diameter_and_pigment(rng, 0.25 + 0.4 * thinning if view == "crown" else 0.2)
        if view == "part_line":
            normal = np.array([np.cos(part_angle - np.pi / 2), np.sin(part_angle - np.pi / 2)])
            side = np.sign((rt - [cx, cy]) @ normal)
            # Combed away from the part, sweeping slightly along it: never back across it.
            ang = np.arctan2(side * normal[1], side * normal[0]) + rng.normal(0, 0.35)
            length = rng.uniform(4, 14)
        elif view == "crown":
            ang = np.arctan2(rt[1] - cy, rt[0] - cx) + 1.1 + rng.normal(0, 0.3)  # whorl
            length = rng.uniform(3, 12)
        else:
            ang = np.pi / 2 + rng.normal(0, 0.4)  # combed back, away from the forehead
            length = rng.uniform(3, 12)
        if diam < 40:
            length = rng.uniform(0.5, 2.0)
        pts = _hair_polyline(rng, rt, ang, length, 0.5, rng.normal(0, 0.03))
        hairs.append(Hair(pts, float(diam), i, float(pig)))
    return Scalp(
        hairs,
        SKIN_TONES_RGB[skin],
        NAMED_HAIR_COLOURS_RGB[hair],
        np.zeros((0, 2)),
        [],
        int(rng.integers(1 << 30)),
        view,
        part_width_mm,
        tuple(extent_mm),
    )


# ---------------------------------------------------------------- camera


def camera_homography(size_px, mm_per_px, centre_mm, cond: Conditions) -> np.ndarray:
    """World mm -> image px for a camera looking at centre_mm with the given pose changes."""
    w, h = size_px
    hw, hh = w * mm_per_px * cond.scale / 2, h * mm_per_px * cond.scale / 2
    quad = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
    # Tilt: the far edge of the field covers more scalp than the near edge (keystone).
    a = np.sin(np.radians(cond.tilt_deg)) * 0.45
    ax = np.radians(cond.tilt_axis_deg)
    rot_axis = np.array([[np.cos(ax), -np.sin(ax)], [np.sin(ax), np.cos(ax)]])
    q = quad @ rot_axis
    q[:, 0] *= 1 + a * np.sign(q[:, 1]) * 0.5
    q[:, 1] *= 1 + a * np.sign(q[:, 1]) * 0.25
    quad = q @ rot_axis.T
    r = np.radians(cond.rotation_deg)
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    quad = quad @ rot.T + np.asarray(centre_mm) + np.asarray(cond.shift_mm)
    img = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    return cv2.getPerspectiveTransform(quad.astype(np.float32), img)


def _project(h, pts):
    p = cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), h)
    return p.reshape(-1, 2)


def local_px_per_mm(h, pt_mm) -> float:
    """Geometric-mean scale of the homography at a world point."""
    d = 0.05
    p = _project(h, np.array([pt_mm, pt_mm + [d, 0], pt_mm + [0, d]]))
    j = np.stack([(p[1] - p[0]) / d, (p[2] - p[0]) / d], 1)
    return float(np.sqrt(abs(np.linalg.det(j))))


# ---------------------------------------------------------------- rendering


def _skin_background(scalp: Scalp, h_world, size_px, rng):
    w, h = size_px
    base = np.array(scalp.skin_rgb[::-1], np.float32)
    # Low-frequency texture fixed to the world, so re-imaging shows the same skin.
    inv = np.linalg.inv(h_world)
    gy, gx = np.mgrid[0:h:8, 0:w:8].astype(np.float32)
    wpts = _project(inv, np.stack([gx.ravel(), gy.ravel()], 1)).reshape(gy.shape + (2,))
    s = scalp.texture_seed % 1000 / 1000.0
    tex = np.sin(wpts[..., 0] * 1.7 + s * 10) * np.cos(wpts[..., 1] * 1.3 + s * 7) + 0.5 * np.sin(
        wpts[..., 0] * 4.1 - wpts[..., 1] * 3.3 + s * 3
    )
    tex = cv2.resize(tex.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    img = base[None, None, :] * (1 + 0.05 * tex[..., None])
    img += rng.normal(0, 2.0, img.shape).astype(np.float32)  # fine skin grain
    return img


# Colours of the skin signs (BGR): what a polarised dermoscope shows of them on any skin tone.
VESSEL_BGR = (70, 55, 175)  # dotted vessels: capillary loops seen end-on
YELLOW_DOT_BGR = (95, 185, 225)  # yellow dots: openings plugged with keratin and sebum
HONEYCOMB_CELL_MM = (0.12, 0.25)  # pigment network: darker rete ridges around lighter holes
HONEYCOMB_LINE_MM = (0.012, 0.025)
PIGMENT_NETWORK_BGR_GAIN = np.array((0.55, 0.65, 0.78), np.float32)


def _draw_skin_signs(img, scalp: Scalp, h_world):
    """What a real scalp shows besides hair, none of which is hair: a honeycomb pigment network
    (thin brown lines, common on darker and sun-exposed skin) and dotted vessels (red dots about
    the width of a vellus hair); yellow dots come after the openings (_draw_yellow_dots). They
    are fixed to the world, from the scalp's own seed, so every photo of the scalp shows the
    same ones; the hair coverage (the truth) is unchanged."""
    if scalp.signs <= 0:
        return
    rng = np.random.default_rng(scalp.texture_seed + 1)
    x0, y0, x1, y1 = scalp.extent_mm
    area_cm2 = (x1 - x0) * (y1 - y0) / 100.0
    skin = np.array(scalp.skin_rgb[::-1], np.float32)
    line = _honeycomb(img.shape[:2], h_world, scalp.extent_mm, rng)
    brown = skin * PIGMENT_NETWORK_BGR_GAIN  # melanin darkens blue most
    a = (scalp.signs * rng.uniform(0.3, 0.6) * line)[..., None]
    img[:] = img * (1 - a) + brown * a
    vessels = rng.uniform([x0, y0], [x1, y1], (rng.poisson(scalp.signs * rng.uniform(40, 160) * area_cm2), 2))
    radii, alphas = rng.uniform(0.008, 0.016, len(vessels)), rng.uniform(0.35, 0.7, len(vessels))
    _blend_dots(img, h_world, vessels, radii, alphas, VESSEL_BGR)


def _draw_yellow_dots(img, scalp: Scalp, h_world):
    """Yellow dots: some openings plugged with keratin and sebum, drawn over the dark opening."""
    if scalp.signs <= 0:
        return
    rng = np.random.default_rng(scalp.texture_seed + 2)
    plugged = scalp.openings_mm[rng.random(len(scalp.openings_mm)) < 0.35 * scalp.signs]
    radii, alphas = rng.uniform(0.04, 0.1, len(plugged)), rng.uniform(0.4, 0.8, len(plugged))
    _blend_dots(img, h_world, plugged, radii, alphas, YELLOW_DOT_BGR)


def _honeycomb(shape, h_world, extent_mm, rng) -> np.ndarray:
    """0-1 weight of a pigment network's lines at each pixel: the cell walls of a jittered
    Voronoi pattern in world millimetres (where the nearest two cell centres are equally far)."""
    x0, y0, x1, y1 = extent_mm
    cell = rng.uniform(*HONEYCOMB_CELL_MM)
    half_line = rng.uniform(*HONEYCOMB_LINE_MM) / 2
    nx, ny = int((x1 - x0) / cell) + 3, int((y1 - y0) / cell) + 3
    jitter = rng.uniform(0, 1, (ny, nx, 2))
    h, w = shape
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)
    wpts = _project(np.linalg.inv(h_world), np.stack([gx.ravel(), gy.ravel()], 1))
    cx = np.clip(((wpts[:, 0] - x0) / cell).astype(np.int64), 1, nx - 2)
    cy = np.clip(((wpts[:, 1] - y0) / cell).astype(np.int64), 1, ny - 2)
    dists = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            j = jitter[cy + dy, cx + dx]
            sx, sy = x0 + (cx + dx + j[:, 0]) * cell, y0 + (cy + dy + j[:, 1]) * cell
            dists.append(np.hypot(wpts[:, 0] - sx, wpts[:, 1] - sy))
    d = np.sort(np.stack(dists, 1), 1)
    wall = (d[:, 1] - d[:, 0]) / 2  # distance to the wall between the two nearest centres
    return np.exp(-0.5 * (wall / half_line) ** 2).reshape(h, w).astype(np.float32)


def _blend_dots(img, h_world, centres_mm, radii_mm, alphas, bgr):
    """Round dots of one colour with antialiased edges, each blended at its own strength."""
    h, w = img.shape[:2]
    if not len(centres_mm):
        return
    ppm = local_px_per_mm(h_world, centres_mm[0])
    for (x, y), r, alpha in zip(_project(h_world, centres_mm), radii_mm * ppm, alphas, strict=True):
        if not (-r <= x < w + r and -r <= y < h + r):
            continue
        pad = int(np.ceil(2 * r)) + 1
        xa, xb, ya, yb = max(0, int(x) - pad), min(w, int(x) + pad + 1), max(0, int(y) - pad), min(h, int(y) + pad + 1)
        if xa >= xb or ya >= yb:
            continue
        gy, gx = np.mgrid[ya:yb, xa:xb]
        a = alpha * np.clip(r + 0.5 - np.hypot(gx - x, gy - y), 0, 1)
        img[ya:yb, xa:xb] = img[ya:yb, xa:xb] * (1 - a[..., None]) + np.float32(bgr) * a[..., None]


def _draw_openings_and_flakes(img, scalp: Scalp, h_world):
    if len(scalp.openings_mm):
        pts = _project(h_world, scalp.openings_mm)
        ppm = local_px_per_mm(h_world, scalp.openings_mm[0])
        dark = np.array(scalp.skin_rgb[::-1], np.float32) * 0.72
        for p in pts:
            r = max(1, int(round(0.045 * ppm)))
            cv2.circle(img, (int(p[0]), int(p[1])), r, dark.tolist(), -1, cv2.LINE_AA)
    for poly in scalp.flakes:
        pts = _project(h_world, poly)
        overlay = img.copy()
        cv2.fillPoly(overlay, [np.round(pts).astype(np.int32)], (232, 236, 238), cv2.LINE_AA)
        cv2.addWeighted(overlay, 0.75, img, 0.25, 0, dst=img)


def _hair_coverage_roi(pts_px, width_px, size_px, with_distance=False):
    """Exact coverage of one hair: the area of each pixel within width_px / 2 of the centre line.

    Per pixel, clip(min(2r, r + 1/2 - d), 0, 1) with r the half-width and d the exact distance
    from the pixel centre to the polyline; across the shaft it integrates to exactly the width,
    at any width and angle. (The previous OpenCV thick lines come only in odd widths, which
    drew every hair about a quarter pixel wider than its stated diameter.)"""
    w, h = size_px
    pad = width_px + 2
    x0 = int(max(0, np.floor(pts_px[:, 0].min() - pad)))
    y0 = int(max(0, np.floor(pts_px[:, 1].min() - pad)))
    x1 = int(min(w, np.ceil(pts_px[:, 0].max() + pad)))
    y1 = int(min(h, np.ceil(pts_px[:, 1].max() + pad)))
    if x1 <= x0 or y1 <= y0:
        return None
    pts = pts_px - [x0, y0]
    d = _distance_to_polyline(pts, (y1 - y0, x1 - x0), width_px / 2 + 2)
    r = width_px / 2
    cov = np.clip(np.minimum(2 * r, r + 0.5 - d), 0, 1).astype(np.float32)
    return ((y0, y1, x0, x1), cov, d) if with_distance else ((y0, y1, x0, x1), cov)


def _distance_to_polyline(pts, shape, reach):
    """Exact distance from each pixel centre to the polyline, within reach (inf beyond): the
    nearest drawn segment, found by a distance transform, and its two neighbours are measured."""
    label = np.zeros(shape, np.uint16)
    ip = np.round(pts).astype(np.int32)
    for k in range(len(pts) - 1):
        cv2.line(label, tuple(map(int, ip[k])), tuple(map(int, ip[k + 1])), k + 1, 1, cv2.LINE_8)
    approx, seg_label = nearest_label(label)
    ys, xs = np.nonzero(approx <= reach + 1.5)
    seg = seg_label[ys, xs] - 1
    q = np.stack([xs, ys], 1).astype(np.float64)
    best = np.full(len(q), np.inf)
    n_seg = len(pts) - 1
    for step in (-1, 0, 1):
        k = np.clip(seg + step, 0, n_seg - 1)
        a, b = pts[k], pts[k + 1]
        ab = b - a
        t = np.clip(((q - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-12), 0, 1)
        best = np.minimum(best, np.hypot(*(q - a - t[:, None] * ab).T))
    out = np.full(shape, np.inf)
    out[ys, xs] = best
    return out


def nearest_label(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel, the (approximate L2) distance to the nearest labelled pixel of a label
    image (0 = none) and that pixel's label."""
    approx, nearest = cv2.distanceTransformWithLabels(
        (label == 0).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # OpenCV numbers the zero pixels of its input, here the labelled ones, in row-major order from 1.
    label_of = np.concatenate([[0], label[label > 0]]).astype(np.int64)
    return approx, label_of[nearest]


SHINE_WHITE = np.array([238.0, 238.0, 238.0], np.float32)


def _render_hairs(img, scalp: Scalp, h_world, size_px, rng, shine=0.0):
    w, h = size_px
    coverage = np.zeros((h, w), np.float32)
    hair_bgr = np.array(scalp.hair_rgb[::-1], np.float32)
    skin_bgr = np.array(scalp.skin_rgb[::-1], np.float32)
    order = rng.permutation(len(scalp.hairs))
    for i in order:
        hair = scalp.hairs[i]
        pts = _project(h_world, hair.points_mm)
        if pts[:, 0].max() < -5 or pts[:, 1].max() < -5 or pts[:, 0].min() > w + 5 or pts[:, 1].min() > h + 5:
            continue
        width_px = hair.diameter_um / 1000.0 * local_px_per_mm(h_world, hair.points_mm[len(pts) // 2])
        roi = _hair_coverage_roi(pts, width_px, size_px, with_distance=True)
        if roi is None:
            continue
        (y0, y1, x0, x1), cov, d = roi
        colour = skin_bgr + (hair_bgr - skin_bgr) * hair.pigment
        colour = colour * rng.uniform(0.9, 1.1)
        if shine > 0:
            # The streak is narrow (about a fifth of the shaft) and as bright as the shaft's
            # angle to the light makes it, so it varies from hair to hair.
            sigma = max(0.18 * width_px / 2, 0.4)
            streak = shine * rng.uniform(0.4, 1.0) * np.exp(-0.5 * (np.minimum(d, 1e3) / sigma) ** 2)
            colour = colour + (SHINE_WHITE - colour) * streak[..., None].astype(np.float32)
        a = cov[..., None]
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + colour * a
        sub = coverage[y0:y1, x0:x1]
        coverage[y0:y1, x0:x1] = sub + cov * (1 - sub)
    return coverage


def _render_overview_hairs(img, scalp: Scalp, h_world, size_px):
    """Many strands: draw per width bin at 3x on a full canvas (fast C polylines)."""
    w, h = size_px
    ss = 3
    ppm = local_px_per_mm(
        h_world,
        np.array([(scalp.extent_mm[0] + scalp.extent_mm[2]) / 2, (scalp.extent_mm[1] + scalp.extent_mm[3]) / 2]),
    )
    bins: dict[int, list] = {}
    for hair in scalp.hairs:
        pts = _project(h_world, hair.points_mm)
        if pts[:, 0].max() < 0 or pts[:, 1].max() < 0 or pts[:, 0].min() > w or pts[:, 1].min() > h:
            continue
        t = max(1, int(round(hair.diameter_um / 1000 * ppm * ss)))
        bins.setdefault(t, []).append(np.round(pts * ss * 16).astype(np.int32).reshape(-1, 1, 2))
    uncovered = np.ones((h, w), np.float32)
    for t, polys in bins.items():
        canvas = np.zeros((h * ss, w * ss), np.uint8)
        cv2.polylines(canvas, polys, False, 255, t, cv2.LINE_8, 4)
        cov = cv2.resize(canvas.astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_AREA)
        uncovered *= 1 - cov
    coverage = 1 - uncovered
    hair_bgr = np.array(scalp.hair_rgb[::-1], np.float32)
    img[:] = img * (1 - coverage[..., None]) + hair_bgr * coverage[..., None]
    return coverage


def _card_mask_and_paste(img, h_world, card_origin_mm, size_px):
    ppm_card = 10.0
    raster = card_mod.render_card_bgr(ppm_card).astype(np.float32)
    # card px -> card mm -> world mm -> image px
    t = np.array([[1 / ppm_card, 0, card_origin_mm[0]], [0, 1 / ppm_card, card_origin_mm[1]], [0, 0, 1]])
    hc = h_world @ t
    w, h = size_px
    warped = cv2.warpPerspective(raster, hc, (w, h), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.ones(raster.shape[:2], np.float32), hc, (w, h), flags=cv2.INTER_LINEAR)
    img[:] = img * (1 - mask[..., None]) + warped * mask[..., None]
    return mask


def apply_conditions(img: np.ndarray, cond: Conditions, rng) -> np.ndarray:
    """Photo conditions that do not move pixels: light, colour, optics, sensor, compression."""
    h, w = img.shape[:2]
    out = img * cond.exposure * np.asarray(cond.cast, np.float32)[None, None, :]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
    light = (1 - cond.vignette * r2) * (1 + cond.gradient * (xx / w - 0.5))
    out = out * light[..., None]
    if cond.aperture > 0:  # before blur: the optics soften the lens's rim like everything else
        fov = field_of_view((w, h), cond)[..., None]
        out = out * fov + SURROUND_LEVEL * (1 - fov)
    if cond.blur_sigma_px > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), cond.blur_sigma_px)
    if cond.noise_sigma > 0:
        out = out + rng.normal(0, cond.noise_sigma, out.shape).astype(np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if cond.stamp:
        _stamp(out, rng)
    if cond.jpeg_quality < 100:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(cond.jpeg_quality)])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def _stamp(img, rng):
    """Device overlay in a corner: date and magnification, as dermoscopes burn them in."""
    h, w = img.shape[:2]
    scale = max(0.4, w / 1600)
    text = f"2026-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d} {rng.choice([20, 30, 50, 70])}x"
    corner = rng.integers(4)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = 8 if corner in (0, 3) else w - tw - 8
    y = th + 8 if corner in (0, 1) else h - 8
    colour = (255, 255, 255) if rng.random() < 0.7 else (0, 230, 255)
    cv2.putText(
        img, text, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, max(1, int(scale * 2)), cv2.LINE_AA
    )


def random_conditions(rng, *, strength: float = 1.0, trichoscopy: bool = True, **over) -> Conditions:
    """Photo conditions drawn over the ranges the issue asks for (strength scales them)."""
    s = strength
    c = Conditions(
        exposure=float(1 + rng.uniform(-0.25, 0.25) * s),
        cast=tuple(float(v) for v in 1 + rng.uniform(-0.12, 0.12, 3) * s),
        vignette=float(rng.uniform(0, 0.35) * s),
        gradient=float(rng.uniform(-0.3, 0.3) * s),
        blur_sigma_px=float(rng.uniform(0, 1.4) * s),
        noise_sigma=float(rng.uniform(0, 6) * s),
        jpeg_quality=int(rng.integers(60, 96)),
        scale=1.0 if trichoscopy else float(1 + rng.uniform(-0.15, 0.15) * s),
        rotation_deg=float(rng.uniform(-180, 180)),
        tilt_deg=0.0 if trichoscopy else float(rng.uniform(0, 15) * s),
        tilt_axis_deg=float(rng.uniform(0, 180)),
        shift_mm=(0.0, 0.0),
        stamp=trichoscopy,
    )
    return dataclasses.replace(c, **over)


def image_phantom(
    scalp: Scalp, size_px, mm_per_px, cond: Conditions, seed: int, centre_mm=None, card_origin_mm=None
) -> Phantom:
    """Render one photo of a scalp and compute its exact truth."""
    rng = np.random.default_rng(seed)
    w, h = size_px
    x0, y0, x1, y1 = scalp.extent_mm
    centre = np.array(centre_mm if centre_mm is not None else ((x0 + x1) / 2, (y0 + y1) / 2))
    hw = camera_homography(size_px, mm_per_px, centre, cond)
    img = _skin_background(scalp, hw, size_px, rng)
    _draw_skin_signs(img, scalp, hw)
    _draw_openings_and_flakes(img, scalp, hw)
    _draw_yellow_dots(img, scalp, hw)
    if scalp.view == "trichoscopy":
        coverage = _render_hairs(img, scalp, hw, size_px, rng, cond.shine)
    else:
        coverage = _render_overview_hairs(img, scalp, hw, size_px)
    hidden = 1 - field_of_view(size_px, cond)  # outside the lens: no scalp is seen
    if cond.with_card and card_origin_mm is not None:
        hidden = np.maximum(hidden, _card_mask_and_paste(img, hw, card_origin_mm, size_px))
    coverage = coverage * (1 - hidden)
    out = apply_conditions(img, cond, rng)
    truth = compute_truth(scalp, hw, size_px, coverage, hidden if hidden.any() else None)
    return Phantom(out, coverage.astype(np.float32), truth, hw, mm_per_px, scalp.view, scalp, cond)


def visible_hairs(scalp: Scalp, h_world, size_px, seen: np.ndarray | None = None) -> list[int]:
    """Hairs with any part of the shaft inside the image (the counting rule), and on a pixel
    where scalp is seen when `seen` (bool per pixel) is given."""
    return [
        i for i, hair in enumerate(scalp.hairs) if _seen_samples(centre_line_px(hair, h_world), size_px, seen).any()
    ]


def _seen_samples(p: np.ndarray, size_px, seen: np.ndarray | None = None) -> np.ndarray:
    """Which points (image px) lie inside the frame and, with `seen`, on a pixel showing scalp."""
    w, h = size_px
    inside = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
    if seen is not None:
        q = p[inside].astype(int)
        inside[inside] = seen[q[:, 1], q[:, 0]]
    return inside


def centre_line_px(hair: Hair, h_world) -> np.ndarray:
    """A hair's centre line in image px, sampled every 10 µm."""
    return _project(h_world, _dense(hair.points_mm, 0.01))


def _dense(pts, step):
    seg = np.diff(pts, axis=0)
    lens = np.hypot(*seg.T)
    out = [pts[:1]]
    for p, s, ln in zip(pts[:-1], seg, lens, strict=True):
        k = max(1, int(np.ceil(ln / step)))
        out.append(p + s * (np.arange(1, k + 1)[:, None] / k))
    return np.vstack(out)


def compute_truth(scalp: Scalp, h_world, size_px, coverage, hidden=None) -> dict:
    """Exact values over the scalp the photo shows: `hidden` (0..1 per pixel) is the share of
    each pixel covered by the card or outside the dermoscope's lens."""
    w, h = size_px
    ppm = local_px_per_mm(h_world, np.array(_project(np.linalg.inv(h_world), np.array([[w / 2, h / 2]]))[0]))
    scalp_px = w * h - (float(hidden.sum()) if hidden is not None else 0.0)
    area_cm2 = scalp_px / ppm**2 / 100.0
    valid = np.ones((h, w), bool) if hidden is None else hidden < 0.5
    truth = {
        "mm_per_px": 1.0 / ppm,
        "area_cm2": area_cm2,
        "scalp_visibility": float(1 - coverage[valid].mean()),
        "part_width_mm": scalp.part_width_mm,
    }
    if scalp.view != "trichoscopy":
        return truth
    vis = visible_hairs(scalp, h_world, size_px, None if hidden is None else valid)
    diam = np.array([scalp.hairs[i].diameter_um for i in vis])
    fus: dict[int, int] = {}
    for i in vis:
        fus[scalp.hairs[i].fu_id] = fus.get(scalp.hairs[i].fu_id, 0) + 1
    sizes = np.array(list(fus.values()))
    truth.update(
        {
            "hair_count": len(vis),
            "density_per_cm2": len(vis) / area_cm2,
            "follicular_units": {
                "1": int((sizes == 1).sum()),
                "2": int((sizes == 2).sum()),
                "3+": int((sizes >= 3).sum()),
            },
            "mean_caliber_um": float(diam.mean()) if len(diam) else 0.0,
            "vellus_fraction": float((diam < 40).mean()) if len(diam) else 0.0,
            "terminal_fraction": float((diam >= 60).mean()) if len(diam) else 0.0,
            "cumulative_thickness_mm_per_cm2": float(diam.sum() / 1000 / area_cm2),
            "visible_hair_ids": vis,
        }
    )
    return truth


# ---------------------------------------------------------------- convenience builders


def trichoscopy_phantom(
    seed: int,
    *,
    size_px=(640, 480),
    mm_per_px=None,
    conditions=None,
    strength=1.0,
    aperture=0.0,
    shine=0.0,
    **scalp_kw,
) -> Phantom:
    """A dermoscope field. `aperture` > 0 images it through a round lens, `shine` > 0 under
    non-polarised light (see Conditions); the same scalp and conditions otherwise."""
    rng = np.random.default_rng(seed)
    mm_per_px = mm_per_px if mm_per_px is not None else float(rng.uniform(0.0025, 0.012))
    fw, fh = size_px[0] * mm_per_px, size_px[1] * mm_per_px
    m = max(fw, fh) * 0.6 + 2.0  # margin: hairs enter from outside; follow-ups may move
    scalp = make_trichoscopy_scalp(rng, extent_mm=(-fw / 2 - m, -fh / 2 - m, fw / 2 + m, fh / 2 + m), **scalp_kw)
    cond = conditions or random_conditions(rng, strength=strength)
    over = {k: float(v) for k, v in (("aperture", aperture), ("shine", shine)) if v}
    cond = dataclasses.replace(cond, **over) if over else cond
    return image_phantom(scalp, size_px, mm_per_px, cond, int(rng.integers(1 << 30)), centre_mm=(0, 0))


def overview_phantom(
    seed: int,
    view: str = "crown",
    *,
    size_px=(1200, 900),
    mm_per_px=None,
    conditions=None,
    strength=1.0,
    with_card=False,
    **scalp_kw,
) -> Phantom:
    rng = np.random.default_rng(seed)
    mm_per_px = mm_per_px if mm_per_px is not None else float(rng.uniform(0.12, 0.2))
    fw, fh = size_px[0] * mm_per_px, size_px[1] * mm_per_px
    m = max(fw, fh) * 0.45  # enough scalp around the field for rotation, tilt and a +15% scale
    scalp = make_overview_scalp(rng, view, extent_mm=(-fw / 2 - m, -fh / 2 - m, fw / 2 + m, fh / 2 + m), **scalp_kw)
    cond = conditions or random_conditions(rng, strength=strength, trichoscopy=False, with_card=with_card)
    card_origin = _card_origin_mm(fw, fh) if cond.with_card else None
    return image_phantom(
        scalp, size_px, mm_per_px, cond, int(rng.integers(1 << 30)), centre_mm=(0, 0), card_origin_mm=card_origin
    )


def _card_origin_mm(field_w_mm: float, field_h_mm: float):
    """Where the card lies on the scalp: the lower-left part of the field, beside the area of
    interest; None when the field is too small to hold it."""
    if card_mod.CARD_W_MM > field_w_mm * 0.55:
        return None
    return (-field_w_mm / 2 * 0.92, field_h_mm / 2 * 0.92 - card_mod.CARD_H_MM)


def follow_up(
    base: Phantom, seed: int, *, change_fraction: float = 0.0, strength: float = 1.0, move_mm: float | None = None
) -> Phantom:
    """Re-image the same scalp after removing (negative) or adding (positive) a fraction of the
    visible hairs, with new photo conditions and a small camera move."""
    rng = np.random.default_rng(seed)
    scalp = base.scalp
    hairs = list(scalp.hairs)
    size = base.image.shape[1], base.image.shape[0]
    visible = base.truth.get("visible_hair_ids") or list(range(len(hairs)))
    k = int(round(abs(change_fraction) * len(visible)))
    if change_fraction < 0 and k:
        drop = set(rng.choice(visible, size=k, replace=False).tolist())
        hairs = [hr for i, hr in enumerate(hairs) if i not in drop]
    elif change_fraction > 0 and k:
        hairs = hairs + _new_hairs(rng, base, k)
    new_scalp = dataclasses.replace(scalp, hairs=hairs)
    fw = size[0] * base.mm_per_px
    move = move_mm if move_mm is not None else fw * 0.06
    trich = base.view == "trichoscopy"
    cond = random_conditions(
        rng,
        strength=strength,
        trichoscopy=trich,
        rotation_deg=base.conditions.rotation_deg + float(rng.uniform(-10, 10)),
        shift_mm=tuple(float(v) for v in rng.uniform(-move, move, 2)),
        with_card=base.conditions.with_card,
        aperture=base.conditions.aperture,  # the same dermoscope
    )
    # The card stays where it lay on the scalp at the baseline, as a clinic would place it again.
    card_origin = _card_origin_mm(fw, size[1] * base.mm_per_px) if cond.with_card else None
    return image_phantom(
        new_scalp, size, base.mm_per_px, cond, int(rng.integers(1 << 30)), centre_mm=(0, 0), card_origin_mm=card_origin
    )


def _new_hairs(rng, base: Phantom, k: int) -> list[Hair]:
    """New hairs rooted inside the baseline field (regrowth), same scalp statistics."""
    inv = np.linalg.inv(base.world_to_image)
    w, h = base.image.shape[1], base.image.shape[0]
    out = []
    fu0 = max((hr.fu_id for hr in base.scalp.hairs), default=0) + 1
    for j in range(k):
        root = _project(inv, np.array([[rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h]]))[0]
        diam, pig = _diameter_and_pigment(rng, 0.3)
        pts = _hair_polyline(rng, root, rng.uniform(0, 2 * np.pi), rng.uniform(0.4, 1.3), 0.04, 0.0)
        out.append(Hair(pts, float(diam), fu0 + j, float(pig)))
    return out


def change_truth(base: Phantom, follow: Phantom) -> float:
    """True fractional change in hair count on the overlap of the two fields (of what each
    photo's lens shows, when it images a disc)."""
    size = base.image.shape[1], base.image.shape[0]
    seen_b = field_of_view(size, base.conditions) >= 0.5
    seen_f = field_of_view(size, follow.conditions) >= 0.5

    def in_both(hair):
        pb, pf = centre_line_px(hair, base.world_to_image), centre_line_px(hair, follow.world_to_image)
        return bool((_seen_samples(pb, size, seen_b) & _seen_samples(pf, size, seen_f)).any())

    nb = sum(in_both(hr) for hr in base.scalp.hairs)
    nf = sum(in_both(hr) for hr in follow.scalp.hairs)
    return (nf - nb) / max(nb, 1)
