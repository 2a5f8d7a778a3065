"""analyze_image / analyze_batch: calibration and quality -> segmentation -> metrics -> pictures."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from . import counting, grading, heatmaps, metrics, quality
from .calibration import Calibration, calibrate
from .quality import QualityReport, channel_medians
from .segmentation import Segmenter, load_segmenter

VIEWS = ("crown", "hairline", "temple_left", "temple_right", "part_line", "trichoscopy")
OVERVIEW_MAX_SIDE = 1280  # hair strands are still visible as texture; 12 MP -> about 1.2 MP
TRICHO_MAX_SIDE = 3000  # trichoscopy keeps full resolution up to this size
MIN_SIDE = 64
MAX_PIXELS = 100e6
GRID = (3, 3)
HIST_EDGES_UM = tuple(range(0, 160, 10))


class BadImage(Exception):
    """The image can never be analysed; the message is meant for a clinician."""


@dataclass(frozen=True)
class Thresholds:
    vellus_um: float = 40.0
    terminal_um: float = 60.0


DEFAULT_THRESHOLDS = Thresholds()


@dataclass
class Prepared:
    original_shape: tuple
    view: str
    work: np.ndarray  # BGR at working resolution
    scale: float  # work px per original px
    calibration: Calibration
    quality: QualityReport
    valid: np.ndarray  # scalp pixels (not card, not device overlay) at working resolution
    seg_input: np.ndarray | None = None  # `work` with non-scalp pixels neutralised for the network

    @property
    def mm_per_px_work(self) -> float | None:
        mm = self.calibration.mm_per_px
        return None if mm is None else mm / self.scale


@dataclass
class ImageAnalysis:
    values: dict
    view: str
    heatmap_bgr: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)  # uint8 0/1 hair mask, working resolution
    prob: np.ndarray | None = field(default=None, repr=False)  # hair coverage, working resolution
    graph: metrics.HairGraph | None = field(default=None, repr=False)
    prepared: Prepared | None = field(default=None, repr=False)
    regions: dict | None = None

    def to_dict(self) -> dict:
        d = dict(self.values)
        if self.regions is not None:
            d["regions"] = self.regions
        return d

    def heatmap_png(self) -> bytes | None:
        return None if self.heatmap_bgr is None else heatmaps.to_png(self.heatmap_bgr)


def decode_image(data: bytes) -> np.ndarray:
    """Bytes of a JPEG/PNG/... -> BGR uint8, upright per EXIF; BadImage when it cannot be."""
    if not data:
        raise BadImage("The file is empty.")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise BadImage("The file is not a readable image (JPEG, PNG, TIFF or WebP expected).")
    check_image(img)
    return img


def check_image(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise BadImage("The image must be a colour (3-channel, 8-bit) photo.")
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise BadImage(f"The image is too small to analyse ({w}x{h} pixels).")
    if h * w > MAX_PIXELS:
        raise BadImage(f"The image is too large ({w}x{h} pixels; at most 100 megapixels).")
    if float(img[::7, ::7].std()) < 1.0:  # a sparse sample: std of 12 MP costs almost a second
        raise BadImage("The image is blank (a single colour).")


TEXT_MIN_CHARS = 4  # a date or a magnification has more characters than this
FAINT_TEXT_TOPHAT = 25  # white text on light skin: its darkest channel stands out this much
FAINT_TEXT_LEVEL = 170  # ... and is at least this bright (the skin's blue is lower)


def device_overlay_mask(img: np.ndarray) -> np.ndarray:
    """Burned-in text (date, magnification) in a corner band: strokes thinner than hair, much
    brighter than their surroundings, near-white or saturated yellow, several characters in a
    row. Grey or white hair on dark skin is bright too, but wider than a text stroke and not
    broken into characters, so it is left alone."""
    h, w = img.shape[:2]
    b8, g8, r8 = cv2.split(img)
    top = cv2.max(cv2.max(b8, g8), r8)  # = img.max(axis=2), about 20x faster
    k = max(3, int(round(w / 400)) | 1)  # text strokes scale with the frame, hair with the optics
    kernel = np.ones((k, k), np.uint8)
    tophat = cv2.morphologyEx(top, cv2.MORPH_TOPHAT, kernel)
    neutral = (cv2.absdiff(b8, g8) < 40) & (cv2.absdiff(g8, r8) < 40)  # uint8 stays exact: no int16 copies
    yellow = (r8 > 170) & (g8 > 170) & (b8 < 120)
    strokes = (top > 215) & (tophat > 40) & (neutral | yellow)
    # Yellow text on light, brightly lit skin is no brighter than the skin's red channel, and
    # JPEG's coarse colour leaves its blue well above zero: it stands out only in yellowness.
    # JPEG keeps colour at half resolution, smearing a 1 px stroke's yellow over 2-3 px, so
    # its top-hat is twice as wide as the brightness one.
    yellowness = cv2.subtract(cv2.min(g8, r8), b8)
    colour_kernel = np.ones((2 * k - 1, 2 * k - 1), np.uint8)
    strokes |= (cv2.morphologyEx(yellowness, cv2.MORPH_TOPHAT, colour_kernel) > 40) & (r8 > 170) & (g8 > 150)
    strokes = strokes.astype(np.uint8)
    # White text on light skin is barely brighter than the skin in red, but much brighter in
    # the darkest channel (skin's blue). Flakes and hair highlights stand out there too, so
    # these faint strokes count only where they line up as characters (_text_line).
    darkest = cv2.min(cv2.min(b8, g8), r8)
    faint = (cv2.morphologyEx(darkest, cv2.MORPH_TOPHAT, kernel) > FAINT_TEXT_TOPHAT) & (darkest > FAINT_TEXT_LEVEL)
    faint = faint.astype(np.uint8)
    out = np.zeros((h, w), bool)
    bh, bw = max(8, int(h * 0.12)), max(8, int(w * 0.45))
    for ys in (slice(0, bh), slice(h - bh, h)):
        for xs in (slice(0, bw), slice(w - bw, w)):
            box = strokes[ys, xs]
            found = box.sum() >= 20 and cv2.connectedComponents(box, connectivity=8)[0] - 1 >= TEXT_MIN_CHARS
            line = _text_line(faint[ys, xs] | box)
            if line is not None:
                box, found = box | line, True
            if not found:
                continue
            # Group the characters into one text box, with margin for the network's context.
            blob = cv2.dilate(box, np.ones((k * 3, k * 8), np.uint8))
            out[ys, xs] |= cv2.dilate(blob, np.ones((k * 4, k * 4), np.uint8)) > 0
    return out


def _text_line(strokes: np.ndarray) -> np.ndarray | None:
    """The stroke groups (uint8 0/1) that form a line of text, or None: at least
    TEXT_MIN_CHARS of one height (within -50/+60% of the typical one, the upper quartile, as
    a hyphen or a broken stroke is lower), centred on one line, each within 2.5 heights of the
    next. Flakes, hair highlights and noise are scattered, not set in a row."""
    n, labels, stats, centres = cv2.connectedComponentsWithStats(strokes, connectivity=8)
    ids = np.arange(1, n)[stats[1:, cv2.CC_STAT_AREA] >= 8]
    if len(ids) < TEXT_MIN_CHARS:
        return None
    heights = stats[:, cv2.CC_STAT_HEIGHT]
    typical = np.percentile(heights[ids], 75)
    ids = ids[(heights[ids] > 0.5 * typical) & (heights[ids] < 1.6 * typical)]
    if typical < 3 or len(ids) < TEXT_MIN_CHARS:
        return None
    ids = ids[np.abs(centres[ids, 1] - np.median(centres[ids, 1])) < 0.4 * typical]
    ids = ids[np.argsort(centres[ids, 0])]
    # The longest run of characters each close to the next.
    breaks = np.nonzero(np.diff(centres[ids, 0]) >= 2.5 * typical)[0] + 1
    runs = np.split(ids, breaks)
    line = max(runs, key=len)
    return np.isin(labels, line).astype(np.uint8) if len(line) >= TEXT_MIN_CHARS else None


SURROUND_MAX = 40  # brightest channel a camera records outside a dermoscope's lens (black, noise, JPEG)
SURROUND_SHARE = 0.3  # ... and at most this share of the scalp's brightness
THICKEST_HAIR_MM = 0.14  # a disc this wide fits into the lens's surround but into no hair
LENS_WORK_SIDE = 480  # the surround is large: finding it at about this size is enough and cheap
MIN_FIELD_SHARE = 0.2  # less scalp than this share of the photo: too few hairs for a stable density


def outside_lens_mask(img: np.ndarray, mm_per_px: float | None) -> np.ndarray:
    """Where a round dermoscope lens shows no scalp: the near-black surround outside its disc.

    Candidates are near-black regions joined to the frame's edge and wider than any hair (an
    opening with a disc THICKEST_HAIR_MM wide removes hair). Black hair on very dark skin
    under vignetting can still pass: where thick hairs pile up in a corner they are as dark
    and as wide. So the candidates' inner edge must be an arc of one circle, the lens's rim;
    the mask is then everything outside that circle, which also leaves hairs that reach the
    rim to the scalp. A surround thinner than THICKEST_HAIR_MM (a lens that clips only the
    very corners) is not found."""
    h, w = img.shape[:2]
    none = np.zeros((h, w), bool)
    s = min(1.0, LENS_WORK_SIDE / max(h, w))
    small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else img
    b8, g8, r8 = cv2.split(small)
    top = cv2.GaussianBlur(cv2.max(cv2.max(b8, g8), r8), (0, 0), 1.5)  # noise would break it up
    level = float(np.percentile(top, 90))  # the scalp, even when the lens shows only a small disc
    dark = (top < min(SURROUND_MAX, SURROUND_SHARE * level)).astype(np.uint8)
    d = THICKEST_HAIR_MM / mm_per_px * s if mm_per_px else 0.02 * min(top.shape)
    d = max(3, int(round(d)) | 1)
    wide = cv2.morphologyEx(dark, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d)))
    n, lab = cv2.connectedComponents(wide, connectivity=8)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    surround = np.isin(lab, edge[edge > 0])
    if surround.mean() < 0.005:
        return none
    circle = _rim_circle(surround, dark > 0)
    if circle is None:
        return none
    cx, cy, r = (v / s for v in circle)
    # 2 px inside the fitted rim: the rim is blurred by the optics like everything else.
    return _outside_circle((h, w), cx, cy, r - 2)


def _outside_circle(shape, cx: float, cy: float, r: float) -> np.ndarray:
    """Pixels whose centres lie outside the circle (x, y, radius in px)."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 > r * r


RIM_TOLERANCE = 0.03  # of the radius: how far the surround's inner edge may stray from one circle
RIM_ON_CIRCLE = 0.7  # share of that edge that must lie on the circle (hairs reaching the rim do not)
SURROUND_DARK = 0.9  # share of the frame outside the circle that must be near-black


def _rim_circle(surround: np.ndarray, dark: np.ndarray) -> tuple[float, float, float] | None:
    """The circle (x, y, radius in px) that the surround's inner edge follows, or None when that
    edge is no circle's arc (a pile of dark hair, a shadow)."""
    h, w = surround.shape
    # The scalp is the largest region left; holes in the surround (its burned-in text) are not.
    n, lab, stats, _ = cv2.connectedComponentsWithStats((~surround).astype(np.uint8), connectivity=4)
    if n < 2:
        return None
    disc = (lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    inner = (disc > 0) & ~(cv2.erode(disc, np.ones((3, 3), np.uint8)) > 0)
    inner[[0, -1], :] = False  # the frame's edge is not the rim
    inner[:, [0, -1]] = False
    ys, xs = np.nonzero(inner)
    if len(xs) < 30:
        return None
    x, y = xs + 0.5, ys + 0.5
    keep = np.ones(len(x), bool)
    for _ in range(3):  # least squares (Kasa), then again without the points far off it
        a = np.stack([x[keep], y[keep], np.ones(keep.sum())], 1)
        sol, *_ = np.linalg.lstsq(a, x[keep] ** 2 + y[keep] ** 2, rcond=None)
        cx, cy = sol[0] / 2, sol[1] / 2
        r = float(np.sqrt(max(sol[2] + cx * cx + cy * cy, 0.0)))
        keep = np.abs(np.hypot(x - cx, y - cy) - r) <= max(2.0, RIM_TOLERANCE * r)
        if keep.sum() < 30:
            return None
    outside = _outside_circle((h, w), cx, cy, r)
    if keep.mean() < RIM_ON_CIRCLE or not outside.any() or dark[outside].mean() < SURROUND_DARK:
        return None
    if not (0 <= cx < w and 0 <= cy < h) or r < 0.1 * min(h, w):
        return None
    return float(cx), float(cy), r


def prepare(
    img: np.ndarray,
    view: str,
    mm_per_px: float | None,
    baseline_measures: dict | None = None,
    *,
    for_network: bool = True,
) -> Prepared:
    """Quality gate, calibration, working size and scalp mask; with `for_network` also the
    network's input (`seg_input`), which a photo measured from a stored coverage map does not need."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, not {view!r}")
    check_image(img)
    h, w = img.shape[:2]
    limit = TRICHO_MAX_SIDE if view == "trichoscopy" else OVERVIEW_MAX_SIDE
    s = min(1.0, limit / max(h, w))
    # Trichoscopy uses the device's scale; looking for a card there would only cost time.
    cal = (
        calibrate(img, mm_per_px)
        if view != "trichoscopy" or mm_per_px is None
        else Calibration(float(mm_per_px), None, "given")
    )
    # A round dermoscope lens leaves a black surround: not scalp, not exposure, not an edge.
    outside = outside_lens_mask(img, cal.mm_per_px) if view == "trichoscopy" else None
    work = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else img
    valid = scalp_pixels(work, s, view, cal, outside)
    measured = _clear_of_fill(valid)
    redness = {"hair_redness": quality.hair_redness(work, measured)} if view == "trichoscopy" else {}
    red_hair = quality.red_hair(redness)  # then the network sees the photo in grey
    scalp = None if outside is None else ~outside
    measures = quality.measure(img, scalp) | redness
    qual = quality.assess_measures(measures, view, cal, baseline_measures)
    field_share = 1.0 if outside is None else 1.0 - float(outside.mean())
    if field_share < MIN_FIELD_SHARE:
        qual.fail(
            "field_of_view",
            f"The dermoscope's round field fills only {100 * field_share:.0f}% of the photo: "
            "zoom in until the field fills the frame's height, and retake.",
        )
    if view == "trichoscopy" and cal.mm_per_px is None:
        qual.fail(
            "no_scale",
            "The dermoscope's scale is unknown: set its micrometres per pixel in the clinic "
            "settings so that density and caliber can be measured.",
        )
    seg_input = network_input(work, valid, grey=red_hair) if for_network else None
    return Prepared(img.shape, view, work, s, cal, qual, measured, seg_input)


def scalp_pixels(work: np.ndarray, scale: float, view: str, cal: Calibration, outside: np.ndarray | None) -> np.ndarray:
    """Pixels of the working image that show scalp: not the card, not the device's burned-in
    text, not a round lens's surround (`outside`, at the original size)."""
    valid = np.ones(work.shape[:2], bool)
    card = cal.card_mask(work.shape, scale)
    if card is not None:
        valid &= ~card
    if view == "trichoscopy":
        valid &= ~device_overlay_mask(work)
        if outside.any():
            valid &= cv2.resize(outside.astype(np.uint8), valid.shape[::-1], interpolation=cv2.INTER_NEAREST) == 0
    return valid


# The network sees the card and the burned-in text as a flat fill (`network_input`); the fill's
# edge against real skin reads as hair for up to about ten pixels, so measuring stops short of it.
FILL_MARGIN_PX = 12


def _clear_of_fill(valid: np.ndarray) -> np.ndarray:
    if valid.all():
        return valid
    k = np.ones((2 * FILL_MARGIN_PX + 1,) * 2, np.uint8)
    return valid & (cv2.dilate((~valid).astype(np.uint8), k) == 0)


def network_input(work: np.ndarray, valid: np.ndarray, grey: bool = False) -> np.ndarray:
    """What the network sees: the card and burned-in text filled with the scalp's median colour
    (a white card would otherwise dominate the network's per-image normalisation and hide
    low-contrast hair); with `grey`, the photo in grey, in which the network finds red and
    dyed hair that it does not see in colour (its training colours never had their hue)."""
    out = work
    if not (valid.all() or not valid.any()):
        out = work.copy()
        out[~valid] = channel_medians(work, valid).astype(np.uint8)
    if grey:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return out


def analyze_image(
    image_bgr: np.ndarray,
    *,
    view: str,
    mm_per_px: float | None = None,
    sex: str | None = None,
    thresholds: Thresholds = Thresholds(),
    segmenter: Segmenter | None = None,
) -> ImageAnalysis:
    return analyze_batch(
        [image_bgr], views=[view], mm_per_px=[mm_per_px], sex=sex, thresholds=thresholds, segmenter=segmenter
    )[0]


def analyze_batch(
    images: list[np.ndarray],
    *,
    views: list[str],
    mm_per_px: list[float | None],
    sex: str | None = None,
    thresholds: Thresholds = Thresholds(),
    segmenter: Segmenter | None = None,
    baseline_measures: list[dict | None] | None = None,
    with_heatmap: bool = True,
) -> list[ImageAnalysis]:
    """Segment all images in one batched pass (one GPU round trip), then measure each."""
    if not (len(images) == len(views) == len(mm_per_px)):
        raise ValueError("images, views and mm_per_px must have the same length")
    t0 = time.perf_counter()
    seg = segmenter or load_segmenter()
    bases = baseline_measures or [None] * len(images)
    preps = [prepare(img, v, m, b) for img, v, m, b in zip(images, views, mm_per_px, bases, strict=True)]
    probs = segment(seg, [p.seg_input for p in preps], [p.view != "trichoscopy" for p in preps])
    counter = counting.load_counter(getattr(seg, "device", None))
    per_image_overhead = (time.perf_counter() - t0) / max(len(images), 1)
    version = model_version(seg)
    out = []
    for p, prob in zip(preps, probs, strict=True):
        t1 = time.perf_counter()
        res = measure(
            p,
            prob,
            sex=sex,
            thresholds=thresholds,
            model_version=version,
            with_heatmap=with_heatmap,
            counter=counter,
        )
        res.values["seconds"] = round(per_image_overhead + time.perf_counter() - t1, 3)
        out.append(res)
    return out


def segment(seg: Segmenter, images: list[np.ndarray], overview: list[bool]) -> list[np.ndarray]:
    """Coverage maps: the images flagged `overview` (phone photos of the standard views) go
    through the segmenter's overview network when one is shipped, the rest through the
    segmenter itself; one predict() call per network."""
    ov_net = getattr(seg, "overview", None)
    if ov_net is None or not any(overview):
        return seg.predict(images)
    out: list = [None] * len(images)
    for net, wanted in ((seg, False), (ov_net, True)):
        idx = [i for i, flag in enumerate(overview) if flag == wanted]
        if idx:
            for i, prob in zip(idx, net.predict([images[i] for i in idx]), strict=True):
                out[i] = prob
    return out


def model_version(seg: Segmenter) -> str:
    counter = counting.load_counter(getattr(seg, "device", None))
    return versions(seg.model_version, counter.version if counter else None)


def versions(segmenter: str, counter: str | None) -> str:
    """What produced a result: segmenter, hair counter (when shipped) and metric algorithms."""
    parts = [segmenter] + ([counter] if counter else []) + [f"metrics-{metrics.METRICS_VERSION}"]
    return "+".join(parts)


def measure(
    p: Prepared,
    prob: np.ndarray,
    *,
    sex=None,
    thresholds=Thresholds(),
    model_version="",
    with_heatmap=True,
    counter: counting.Counter | None = None,
) -> ImageAnalysis:
    prob = np.where(p.valid, prob, 0).astype(np.float32)
    mm = p.mm_per_px_work
    vals = _empty_values()
    vals["scalp_visibility"] = round(metrics.scalp_visibility(prob, p.valid), 4)
    graph = ends = None
    if p.view == "trichoscopy":
        # Contrast needs the coverage map; the analysis carries it in its own copy of the quality report.
        p = replace(p, quality=quality.with_hair_contrast(p.quality, quality.hair_contrast(p.work, prob, p.valid)))
        graph = metrics.build_hair_graph(prob, mm or 0.008, valid=p.valid)
        area_cm2 = measured_area_cm2(p.valid, mm)
        cal_um = metrics.calibers_um(prob, mm, p.valid, graph) if mm else None
        vals.update(_hair_values(graph, cal_um, area_cm2, thresholds))
        if counter is not None and area_cm2:
            ends = counter.count(prob, p.valid, mm)
            vals.update(_counted_values(ends, area_cm2, thresholds))
    if p.view == "part_line" and mm:
        pw = metrics.part_width_px(prob, p.valid, smooth_px=max(1.0, 0.3 / mm))
        vals["part_width_mm"] = None if pw is None else round(float(pw[0]) * mm, 2)
    regions = regional_grid(prob, p.valid, graph, mm, ends)
    vals["severity"] = grading.suggest(p.view, sex, np.array(regions["scalp_visibility"]), vals["part_width_mm"])
    vals["quality"] = p.quality.to_dict()
    vals["calibration"] = p.calibration.to_dict()
    vals["model_version"] = model_version
    heat = heatmaps.coverage_heatmap(p.work, prob, mm, p.valid) if with_heatmap else None
    return ImageAnalysis(vals, p.view, heat, (prob > metrics.MASK_THRESHOLD).astype(np.uint8), prob, graph, p, regions)


def _empty_values() -> dict:
    return {
        k: None
        for k in (
            "hair_count",
            "density_per_cm2",
            "follicular_units",
            "mean_caliber_um",
            "caliber_histogram_um",
            "vellus_fraction",
            "terminal_fraction",
            "cumulative_thickness_mm_per_cm2",
            "scalp_visibility",
            "part_width_mm",
            "quality",
            "calibration",
            "severity",
            "model_version",
            "seconds",
        )
    }


def measured_area_cm2(valid: np.ndarray, mm: float | None) -> float | None:
    """The scalp area that was measured: the dermoscope's burned-in text and the strip beside
    it (`FILL_MARGIN_PX`) hide hairs, so counting over the whole frame would read density low by
    the hidden share (1-2% for a corner stamp, more for a wide overlay band)."""
    return float(valid.sum()) * mm * mm / 100.0 if mm and valid.any() else None


def _hair_values(g: metrics.HairGraph, cal: np.ndarray | None, area_cm2: float | None, th: Thresholds) -> dict:
    """Count and follicular units from the hair graph; caliber values from `cal`, the
    measurable hairs' calibers in um (`metrics.calibers_um`)."""
    n = g.hair_count
    sizes = np.asarray(g.fu_sizes, int)
    v = {
        "hair_count": n,
        "follicular_units": {"1": int((sizes == 1).sum()), "2": int((sizes == 2).sum()), "3+": int((sizes >= 3).sum())},
    }
    if area_cm2 is None:  # no scale, or nothing measured
        return v
    counts, _ = np.histogram(cal, bins=list(HIST_EDGES_UM) + [1e9])
    widths = n and len(cal)
    v.update(
        {
            "density_per_cm2": round(n / area_cm2, 2),
            "mean_caliber_um": round(float(cal.mean()), 2) if widths else None,
            "caliber_histogram_um": {"edges_um": list(HIST_EDGES_UM), "counts": [int(c) for c in counts]},
            "vellus_fraction": round(float((cal < th.vellus_um).mean()), 4) if widths else None,
            "terminal_fraction": round(float((cal >= th.terminal_um).mean()), 4) if widths else None,
            # Every counted hair at the measured hairs' mean width.
            "cumulative_thickness_mm_per_cm2": round(float(n * cal.mean() / 1000.0 / area_cm2), 3) if widths else 0.0,
        }
    )
    return v


def _counted_values(c: counting.EndCounts, area_cm2: float, th: Thresholds) -> dict:
    """Count, density and caliber classes from the hair-end counter (see counting.py); these
    replace the hair graph's, which undercounts hairs lying along each other."""
    v = {
        "hair_count": int(round(c.hairs)),
        "density_per_cm2": round(c.hairs / area_cm2, 2),
        "caliber_histogram_um": {"edges_um": list(HIST_EDGES_UM), "counts": c.histogram(HIST_EDGES_UM[1:])},
    }
    if c.mean_caliber_um is None:
        return v | {"mean_caliber_um": None, "vellus_fraction": None, "terminal_fraction": None}
    return v | {
        "mean_caliber_um": round(c.mean_caliber_um, 2),
        "vellus_fraction": round(c.fraction_below(th.vellus_um), 4),
        "terminal_fraction": round(c.fraction_at_least(th.terminal_um), 4),
        "cumulative_thickness_mm_per_cm2": round(c.hairs * c.mean_caliber_um / 1000.0 / area_cm2, 3),
    }


def regional_grid(prob, valid, graph, mm, ends: counting.EndCounts | None = None) -> dict:
    """The same values per cell of a 3x3 grid (rows top to bottom)."""
    h, w = prob.shape
    rows, cols = GRID
    vis = np.full(GRID, np.nan)
    dens = np.full(GRID, np.nan) if graph is not None and mm else None
    cx, cy = graph.positions().T if graph is not None else (None, None)  # once, not per cell
    for r in range(rows):
        for c in range(cols):
            ys, xs = slice(r * h // rows, (r + 1) * h // rows), slice(c * w // cols, (c + 1) * w // cols)
            vis[r, c] = metrics.scalp_visibility(prob[ys, xs], valid[ys, xs])
            area = measured_area_cm2(valid[ys, xs], mm) if dens is not None else None
            if area is None:
                continue  # no density, or a cell wholly hidden by the device's text: unknown, not 0
            if ends is not None:
                dens[r, c] = float(ends.density_map[ys, xs].sum()) / area
            else:
                k = ((cx >= xs.start) & (cx < xs.stop) & (cy >= ys.start) & (cy < ys.stop)).sum()
                dens[r, c] = k / area
    out = {"grid": list(GRID), "scalp_visibility": _round_grid(vis)}
    if dens is not None:
        out["density_per_cm2"] = _round_grid(dens)
    return out


def _round_grid(a):
    return [[None if not np.isfinite(x) else round(float(x), 4) for x in row] for row in a]
