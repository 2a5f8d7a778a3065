"""Baseline vs follow-up: register, measure change on the overlap only, match individual hairs
(trichoscopy), attach an uncertainty from measured repeatability, flag only what exceeds it."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import heatmaps, metrics
from .pipeline import DEFAULT_THRESHOLDS, ImageAnalysis, Thresholds, analyze_batch, measure, prepare
from .quality import assess_measures, low_contrast, red_hair
from .registration import Registration, overlap_mask, register
from .segmentation import Segmenter

REPEATABILITY_FILE = Path(__file__).resolve().parent / "repeatability.json"
# Used only until `benchmark_accuracy --repeatability` has measured the real values.
FALLBACK_SIGMA_PCT = {"hair_count": 3.0, "density_per_cm2": 3.0, "mean_caliber_um": 3.0, "scalp_visibility": 3.0}
FALLBACK_OVERVIEW_VISIBILITY_PCT = 8.0  # about what unchanged overview pairs showed before it was measured
MIN_OVERLAP = 0.3
PRESENT_FRACTION = 0.5  # share of a hair's centre line that must be covered to call it present
PRESENT_PROB = 0.15  # low: a faint hair the other photo half-segmented is still there
CONFIDENT_PROB = 0.75
MIN_JUDGED_MM = 0.08  # shorter pieces are fragments of a hair, not evidence of change
MATCH_TOL_PX = 3  # registration and segmentation slack when checking presence
CHANGED_RUN_MM = 0.2  # a stretch of a hair this long missing from the other photo is a change
EVIDENCE_SEEN = 0.5  # the other photo's pixels still show this share of the hair's contrast: doubt
EVIDENCE_SNR = 2.0  # ... or stand out from the skin beside the hair by this many noise sigmas
RING_PX = (4, 10)  # the bare skin this far from a centre line is its contrast's zero
RING_MIN_PX = 8  # fewer bare-skin pixels beside a line than this: no zero to measure from
NOISE_MIN = 0.005  # contrast noise floor: flat fill (a date stamp) has none
# A hair standing out less than this in its own photo: in the colour reading the skin beside it is
# not bare (the grey reading decides); in the grey reading there is nothing to compare with.
OWN_RAISED_MIN = 0.01
FULLY_PRESENT = 0.95  # a hair this much covered by the other photo's is clearly matched
TRANSFER_HAIRS = 30  # clearly matched hairs that measure how much contrast the other photo keeps
MIN_TRANSFER = 0.2  # below this the other photo shows too little of any hair to veto anything
BORDERLINE_PRESENCE = 0.75  # a hair this little covered by the other photo's is doubtful unless its pixels show it
DOUBT_VARIANCE = 0.1  # hairs² per doubtful candidate, fitted on the repeatability pairs (see ENGINE.md)
Z = 2.0  # flag change beyond about 95% of the measurement noise
METRIC_KEYS = ("hair_count", "density_per_cm2", "mean_caliber_um", "scalp_visibility")
# Judged against the noise of pairs of their own hair contrast. Counts are not: each pair's own
# matching doubt (DOUBT_VARIANCE) already widens a low-contrast pair's count uncertainty.
CONTRAST_CLASSED = ("mean_caliber_um", "scalp_visibility")


@dataclass
class Comparison:
    comparable: bool
    reasons: list[str]
    overlap_fraction: float
    changes: dict | None
    change_map_bgr: np.ndarray | None = field(default=None, repr=False)
    registration: Registration | None = field(default=None, repr=False)
    baseline: ImageAnalysis | None = field(default=None, repr=False)
    followup: ImageAnalysis | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {
            "comparable": self.comparable,
            "reasons": list(self.reasons),
            "overlap_fraction": round(float(self.overlap_fraction), 4),
            "changes": self.changes,
        }

    def homography_original_px(self) -> list[list[float]] | None:
        """Follow-up pixel -> baseline pixel, both in the photos as stored (not the working
        resolution), so a viewer can overlay the original images; None when not registered."""
        reg = self.registration
        if reg is None or not reg.ok or reg.homography is None or self.baseline is None or self.followup is None:
            return None
        to_work_f = np.diag([self.followup.prepared.scale, self.followup.prepared.scale, 1.0])
        from_work_b = np.diag([1.0 / self.baseline.prepared.scale, 1.0 / self.baseline.prepared.scale, 1.0])
        h = from_work_b @ reg.homography @ to_work_f
        return [[round(float(v), 8) for v in row] for row in h / h[2, 2]]

    def change_map_png(self) -> bytes | None:
        return None if self.change_map_bgr is None else heatmaps.to_png(self.change_map_bgr)


def repeatability(view: str = "trichoscopy", low_contrast_pair: bool = False) -> dict:
    """Relative standard deviation (%) of each metric between two photos of an unchanged scalp.
    Overview views have their own visibility noise: a hair there is half a pixel wide, and
    light and colour move the coverage far more than on a dermoscope field (measured on
    overview pairs, `overview_sigma_pct`; the trichoscopy value would flag noise as change).
    Trichoscopy pairs in which either photo's hair has low contrast (quality.low_contrast) have
    their own, larger caliber and visibility noise (`low_contrast_sigma_pct`); the others are
    judged without it."""
    data = json.loads(REPEATABILITY_FILE.read_text()) if REPEATABILITY_FILE.exists() else {}
    measured = data.get("sigma_pct", {})
    if low_contrast_pair and view == "trichoscopy":
        measured = {**measured, **data.get("low_contrast_sigma_pct", {})}
    sigma = {k: float(measured.get(k, FALLBACK_SIGMA_PCT[k])) for k in METRIC_KEYS}
    if view != "trichoscopy":
        sigma["scalp_visibility"] = float(
            data.get("overview_sigma_pct", {}).get("scalp_visibility", FALLBACK_OVERVIEW_VISIBILITY_PCT)
        )
    return sigma


def compare_images(
    baseline_bgr: np.ndarray,
    followup_bgr: np.ndarray,
    *,
    view: str,
    mm_per_px: float | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    segmenter: Segmenter | None = None,
) -> Comparison:
    base, foll = analyze_batch(
        [baseline_bgr, followup_bgr],
        views=[view, view],
        mm_per_px=[mm_per_px] * 2,
        thresholds=thresholds,
        segmenter=segmenter,
        with_heatmap=False,
    )
    return compare_analyses(base, foll)


def analysis_from_coverage(
    image_bgr: np.ndarray,
    coverage: np.ndarray,
    *,
    view: str,
    mm_per_px: float | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> ImageAnalysis:
    """An earlier photo's analysis rebuilt from its stored coverage map, for comparing with it:
    no network pass and no heatmap. The map must be at the photo's working resolution."""
    prepared = prepare(image_bgr, view, mm_per_px, for_network=False)
    if coverage.shape[:2] != prepared.work.shape[:2]:
        raise ValueError(f"coverage map {coverage.shape[:2]} is not at the working size {prepared.work.shape[:2]}")
    return measure(prepared, coverage, thresholds=thresholds, with_heatmap=False)


def compare_analyses(base: ImageAnalysis, foll: ImageAnalysis) -> Comparison:
    """Compare a follow-up with its baseline from their analyses (``analyze_batch`` results, or
    ``analysis_from_coverage``): nothing is prepared, segmented or measured again, so a worker
    that has just analysed the follow-up pays only for registration and the change itself.
    Both must be of one view; trichoscopy analyses carry their hair graphs."""
    view = base.view
    if foll.view != view:
        raise ValueError(f"cannot compare a {foll.view} photo with a {view} baseline")
    # Re-check the follow-up's conditions against the baseline's (exposure, tilt, distance, focus).
    fq = assess_measures(
        foll.prepared.quality.measures, view, foll.prepared.calibration, base.prepared.quality.measures
    )
    reasons = [f"baseline: {r}" for r in base.prepared.quality.reasons] + [f"follow-up: {r}" for r in fq.reasons]
    serious = {"focus", "resolution", "no_scale", "match_exposure", "match_tilt", "match_distance", "match_focus"}
    if view == "trichoscopy":
        # Hairs are matched on coverage maps, which the network computes after removing each
        # photo's exposure, and on contrast relative to the local background: a brighter or
        # darker follow-up is worth a retake hint, but it is measured, and its noise is in the
        # repeatability, so it does not make the photos incomparable.
        serious.discard("match_exposure")
    comparable = not (set(base.prepared.quality.codes + fq.codes) & serious)
    if red_hair(base.prepared.quality.measures) != red_hair(foll.prepared.quality.measures):
        # One photo was segmented in grey and the other in colour: their coverage differs by
        # more than any change worth reporting (henna between visits does this, as it should).
        comparable = False
        reasons.append(
            "not comparable: the hair looks red or dyed in one photo only; compare photos taken "
            "with the same hair colour"
        )
    reg = _register(base, foll, view)
    if not reg.ok:
        return Comparison(False, reasons + [f"not comparable: {reg.reason}"], 0.0, None, None, reg, base, foll)
    bw, fw = base.prepared.work, foll.prepared.work
    fvalid = (
        cv2.warpPerspective(
            foll.prepared.valid.astype(np.uint8), reg.homography, (bw.shape[1], bw.shape[0]), flags=cv2.INTER_NEAREST
        )
        > 0
    )
    overlap = overlap_mask(reg.homography, bw.shape, fw.shape) & base.prepared.valid & fvalid
    frac = float(overlap.mean())
    if frac < MIN_OVERLAP:
        comparable = False
        reasons.append(f"not comparable: the photos overlap by only {frac * 100:.0f}%: photograph the same marked area")
    fprob = cv2.warpPerspective(foll.prob, reg.homography, (bw.shape[1], bw.shape[0]), flags=cv2.INTER_LINEAR)
    sigma = repeatability(view, low_contrast_pair=pair_has_low_contrast(base, foll))
    if view == "trichoscopy":
        changes, lost, gained = _hair_changes(base, foll, reg.homography, overlap, fprob, sigma)
    else:
        changes, lost, gained = _coverage_changes(base, fprob, overlap, sigma), None, None
    if not comparable:
        for c in changes.values():
            c["significant"] = False
    cmap = None
    if comparable:  # a picture of change is shown only for comparable photos
        tiles = _tile_changes(base.prob, fprob, overlap, sigma["scalp_visibility"])
        cmap = heatmaps.change_map(
            bw,
            lost if lost is not None else np.zeros(overlap.shape, bool),
            gained if gained is not None else np.zeros(overlap.shape, bool),
            base.prepared.mm_per_px_work,
            overlap,
            tiles,
        )
    return Comparison(comparable, reasons, frac, changes, cmap, reg, base, foll)


def pair_has_low_contrast(base: ImageAnalysis, foll: ImageAnalysis) -> bool:
    """Either photo's hair stands out little from its scalp: the pair is judged against the
    noise of such pairs."""
    return low_contrast(base.prepared.quality.measures) or low_contrast(foll.prepared.quality.measures)


def _register(base: ImageAnalysis, foll: ImageAnalysis, view: str) -> Registration:
    """Coverage maps first for trichoscopy (they ignore light and colour), then the photos."""
    if view == "trichoscopy":
        r = register(base.prob, foll.prob)
        if r.ok:
            return r
    return register(base.prepared.work, foll.prepared.work)


def _change(b, f, sigma_pct, extra_var_pct2=0.0) -> dict:
    if b is None or f is None or not np.isfinite(b) or b == 0:
        return {"baseline": b, "followup": f, "change_pct": None, "uncertainty_pct": None, "significant": False}
    pct = 100.0 * (f - b) / b
    unc = Z * float(np.sqrt(sigma_pct**2 + extra_var_pct2))
    return {
        "baseline": round(float(b), 4),
        "followup": round(float(f), 4),
        "change_pct": round(pct, 2),
        "uncertainty_pct": round(unc, 2),
        "significant": bool(abs(pct) > unc),
    }


def _presence(chain_pixels: list[np.ndarray], other_mask: np.ndarray, region: np.ndarray) -> list[float | None]:
    """Share of each hair's centre line (inside region) covered by the other photo's hair mask."""
    out = []
    for pts in chain_pixels:
        inside = region[pts[:, 1], pts[:, 0]]
        if inside.sum() < 3:
            out.append(None)
            continue
        p = pts[inside]
        out.append(float(other_mask[p[:, 1], p[:, 0]].mean()))
    return out


def _chain_pixels(g: metrics.HairGraph) -> list[np.ndarray]:
    """Centre-line pixels (x, y) of each hair, in row-major order."""
    hair_of_branch = np.zeros(int(g.labels.max()) + 1, np.int64)  # 0: in no hair
    for b, i in g.chain_of_branch.items():
        hair_of_branch[b] = i + 1
    return metrics.coords_by_label(hair_of_branch[g.labels], len(g.chains) + 1)[1:]


def _hair_changes(base, foll, hm, overlap, fprob, sigma):
    """Hair-to-hair matching: a baseline hair is lost when the follow-up shows no hair along its
    centre line; a follow-up hair is new when the baseline shows none along its own."""
    k = np.ones((2 * MATCH_TOL_PX + 1, 2 * MATCH_TOL_PX + 1), np.uint8)
    fmask = cv2.dilate((fprob > PRESENT_PROB).astype(np.uint8), k) > 0
    bh, bw = base.prob.shape
    fh, fw = foll.prob.shape
    inv = np.linalg.inv(hm)
    bprob_in_f = cv2.warpPerspective(base.prob, inv, (fw, fh), flags=cv2.INTER_LINEAR)
    bmask_in_f = cv2.dilate((bprob_in_f > PRESENT_PROB).astype(np.uint8), k) > 0
    overlap_in_f = cv2.warpPerspective(overlap.astype(np.uint8), inv, (fw, fh), flags=cv2.INTER_NEAREST) > 0
    bpix = _chain_pixels(base.graph)
    pres_b = _presence(bpix, fmask, overlap)
    fpix = _chain_pixels(foll.graph)
    pres_f = _presence(fpix, bmask_in_f, overlap_in_f)
    nb = sum(p is not None for p in pres_b)
    mm = base.prepared.mm_per_px_work  # None without a scale: no density or caliber
    judge_mm = mm or 0.008  # lengths still need a scale to tell a hair from a fragment
    long_b = (base.graph.length_px * judge_mm >= MIN_JUDGED_MM) & _confident(bpix, base.prob)
    long_f = (foll.graph.length_px * judge_mm >= MIN_JUDGED_MM) & _confident(fpix, foll.prob)
    contrast = _PairContrast(
        base, foll, hm, _clearly_matched(bpix, pres_b, long_b), _clearly_matched(fpix, pres_f, long_f)
    )
    lost, lost_doubt = _missing_hairs(
        base.graph, bpix, pres_b, long_b, fmask, overlap, base.prob, judge_mm, contrast.baseline_shown_by_followup
    )
    gained, gained_doubt = _missing_hairs(
        foll.graph,
        fpix,
        pres_f,
        long_f,
        bmask_in_f,
        overlap_in_f,
        foll.prob,
        judge_mm,
        contrast.followup_shown_by_baseline,
    )
    # Doubtful hairs are the matching's own noise: each adds DOUBT_VARIANCE (in hairs²).
    amb = lost_doubt + gained_doubt
    # Short fragments and faint pieces count in the baseline but can never be judged lost, so the
    # share lost is taken over the hairs that could have been judged.
    n_judged = sum(1 for p, ok in zip(pres_b, long_b, strict=True) if p is not None and ok)
    nf_est = nb * (1 + (len(gained) - len(lost)) / max(n_judged, 1))
    extra = (100.0 * np.sqrt(DOUBT_VARIANCE * amb) / max(n_judged, 1)) ** 2
    area_cm2 = overlap.sum() * mm * mm / 100 if mm else None
    cal_b = _mean_caliber(base.graph, pres_b, mm)
    cal_f = _mean_caliber(foll.graph, pres_f, mm)
    vis_b = metrics.scalp_visibility(base.prob, overlap)
    vis_f = metrics.scalp_visibility(fprob, overlap)
    changes = {
        "hair_count": _change(nb, nf_est, sigma["hair_count"], extra),
        "density_per_cm2": _change(
            nb / area_cm2 if area_cm2 else None,
            nf_est / area_cm2 if area_cm2 else None,
            sigma["density_per_cm2"],
            extra,
        ),
        "mean_caliber_um": _change(cal_b, cal_f, sigma["mean_caliber_um"]),
        "scalp_visibility": _change(vis_b, vis_f, sigma["scalp_visibility"]),
    }
    lost_mask = _paint(lost, (bh, bw))
    gained_f = _paint(gained, (fh, fw)).astype(np.uint8)
    gained_mask = cv2.warpPerspective(gained_f, hm, (bw, bh), flags=cv2.INTER_NEAREST) > 0
    return changes, lost_mask, gained_mask


def _missing_hairs(graph, chain_pix, presence, judged, other_mask, region, prob, mm, shown_by_other):
    """The hairs of one photo that the other photo does not show, each as its missing centre-line
    pixels, and how many candidates were left as doubtful.

    A hair is missing when most of its centre line has no hair in the other photo, or when a
    stretch of at least CHANGED_RUN_MM does: the skeleton sometimes chains a lost hair to a
    neighbour through a crossing, and the whole chain then still looks present. Either way, the
    other photo's own pixels get the last word: where they still show the hair's contrast, the
    network missed a faint hair there (light, blur), which is doubt, not change."""
    branch_pix = metrics.coords_by_label(graph.labels, int(graph.labels.max()) + 1)
    missing, doubtful = [], 0
    for i, chain in enumerate(graph.chains):
        if presence[i] is None:
            continue
        inside = chain_pix[i][region[chain_pix[i][:, 1], chain_pix[i][:, 0]]]
        if presence[i] < PRESENT_FRACTION and not judged[i]:
            doubtful += 1  # faint or fragmentary: evidence neither way
            continue
        if presence[i] < PRESENT_FRACTION:
            pts = inside
        else:
            pts = _missing_stretch(chain, branch_pix, other_mask, region)
            if len(pts) * mm < CHANGED_RUN_MM or prob[pts[:, 1], pts[:, 0]].mean() < CONFIDENT_PROB:
                # Present; only half-covered hairs that the other photo's pixels do not confirm are doubt.
                if presence[i] <= BORDERLINE_PRESENCE and not shown_by_other(inside):
                    doubtful += 1
                continue
        if shown_by_other(pts):
            doubtful += 1
        else:
            missing.append(pts)
    return missing, doubtful


def _missing_stretch(chain, branch_pix, other_mask, region) -> np.ndarray:
    """Centre-line pixels of the chain's branches that the other photo's hair mask mostly misses."""
    parts = []
    for b in chain:
        pts = branch_pix[b]
        pts = pts[region[pts[:, 1], pts[:, 0]]]
        if len(pts) >= 3 and other_mask[pts[:, 1], pts[:, 0]].mean() < PRESENT_FRACTION:
            parts.append(pts)
    return np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)


class _PairContrast:
    """How much of a hair's own contrast the other photo still shows along its centre line,
    relative to what it shows of hairs that are clearly in both photos (the pair's contrast
    transfer: blur, exposure and colour cast can halve every hair's contrast), computed from
    both photos' pixels only when a candidate change needs it."""

    def __init__(self, base, foll, hm, matched_b, matched_f):
        self._base, self._foll, self._hm = base, foll, hm
        self._matched = matched_b, matched_f

    def _both_ways(self, make, border=0.0):
        """make(analysis) for each photo, with the other photo's warped onto it:
        ((baseline's, follow-up's on the baseline), (follow-up's, baseline's on the follow-up))."""
        b, f, hm = self._base, self._foll, self._hm
        mb, mf = make(b), make(f)
        return (mb, _warp(mf, hm, b.prob.shape, border)), (mf, _warp(mb, np.linalg.inv(hm), f.prob.shape, border))

    @functools.cached_property
    def _maps(self):
        """(own contrast, the other photo's warped onto it, skin in both) for the baseline, then
        the follow-up. Outside the other photo's frame nothing is skin."""
        contrast = self._both_ways(lambda a: _thin_contrast(a.prepared.work, a.prob))
        prob = self._both_ways(lambda a: a.prob, border=1.0)
        return tuple(
            (own, other, (own_prob < PRESENT_PROB) & (other_prob < PRESENT_PROB))
            for (own, other), (own_prob, other_prob) in zip(contrast, prob, strict=True)
        )

    @functools.cached_property
    def _transfer(self):
        return tuple(
            _contrast_transfer([_contrast_kept(pts, *maps) for pts in matched])
            for maps, matched in zip(self._maps, self._matched, strict=True)
        )

    @functools.cached_property
    def _grey(self):
        """The grey-level maps, (own, other's warped onto it) for each photo: only for the few
        hairs whose colour reading has no bare skin to measure from."""
        return self._both_ways(lambda a: _grey_contrast(a.prepared.work, a.prob))

    def baseline_shown_by_followup(self, pts) -> bool:
        return _shown(pts, *self._maps[0], lambda: _grey_kept(pts, *self._grey[0]), self._transfer[0])

    def followup_shown_by_baseline(self, pts) -> bool:
        return _shown(pts, *self._maps[1], lambda: _grey_kept(pts, *self._grey[1]), self._transfer[1])


def _warp(maps, hm, shape, border=0.0):
    """A map, or a tuple of maps, warped by hm onto an image of the given shape."""
    if isinstance(maps, tuple):
        return tuple(_warp(m, hm, shape, border) for m in maps)
    return cv2.warpPerspective(maps, hm, (shape[1], shape[0]), flags=cv2.INTER_LINEAR, borderValue=border)


def _clearly_matched(chain_pix, presence, judged, n=TRANSFER_HAIRS):
    """Centre lines of the longest judged hairs that the other photo fully shows."""
    sel = [
        i for i, (p, ok) in enumerate(zip(presence, judged, strict=True)) if ok and p is not None and p >= FULLY_PRESENT
    ]
    sel.sort(key=lambda i: -len(chain_pix[i]))
    return [chain_pix[i] for i in sel[:n]]


def _contrast_transfer(kept: list[float]) -> float:
    """The median share of contrast that clearly matched hairs keep in the other photo, at most
    1 (a sharper follow-up does not make a missing hair any more present); 1 without them."""
    return float(np.clip(np.median(kept), MIN_TRANSFER, 1.0)) if len(kept) >= 3 else 1.0


def _thin_contrast(img_bgr, prob):
    """How far each pixel's colour stands out from the local background (the median over a
    window wider than the thickest hair), relative to that background's brightness: exposure
    cancels, so two photos can be compared. Colour distance, not brightness alone: under another
    colour cast a blonde hair on pink skin can turn from lighter to darker than the skin, or
    keep only a difference of hue. The background is smooth, so its median is taken at half
    resolution (a quarter of the cost)."""
    half = _thick_hair_half_width(prob)
    h, w = img_bgr.shape[:2]
    small = cv2.resize(img_bgr, (max(w // 2, 1), max(h // 2, 1)), interpolation=cv2.INTER_AREA)
    background = cv2.resize(cv2.medianBlur(small, 2 * int(np.ceil(half)) + 3), (w, h), interpolation=cv2.INTER_LINEAR)
    return _colour_norm(cv2.absdiff(img_bgr, background)) / (_colour_norm(background) + 10.0)


def _thick_hair_half_width(prob) -> float:
    """Half-width in px of the thickest hairs (95th percentile of the mask's distance map)."""
    dist = cv2.distanceTransform((prob > metrics.MASK_THRESHOLD).astype(np.uint8), cv2.DIST_L2, 3)
    return float(np.percentile(dist[dist > 0], 95)) if (dist > 0).any() else 3.0


def _colour_norm(img_bgr):
    f = img_bgr.astype(np.float32)
    return cv2.sqrt(cv2.transform(f * f, np.ones((1, 3), np.float32)))


def _shown(pts, own, other, skin, grey_kept, transfer=1.0) -> bool:
    """Whether the other photo still shows the hair along its centre line: it keeps at least
    EVIDENCE_SEEN of the contrast that the pair's clearly matched hairs keep, or the line stands
    out from the skin beside it by EVIDENCE_SNR noise sigmas (a faint hair under blur or another
    colour cast). Where the hair does not stand out from that skin even in its own photo (dense
    hair or text around it make the median background no skin), the grey-level reading decides."""
    line, ring = _line_and_ring(pts, own.shape, skin)
    raised_own = _raised(own, line, ring)
    if ring[0].size < RING_MIN_PX or raised_own <= OWN_RAISED_MIN:
        return grey_kept() >= EVIDENCE_SEEN
    raised_other = _raised(other, line, ring)
    noise = 1.4826 * float(np.median(np.abs(other[ring] - np.median(other[ring]))))
    return raised_other / raised_own / transfer >= EVIDENCE_SEEN or raised_other >= EVIDENCE_SNR * max(noise, NOISE_MIN)


def _grey_contrast(img_bgr, prob):
    """Relative depth of thin dark and thin light structures (black-hat and top-hat over the
    local background, both divided by it)."""
    grey8 = cv2.transform(img_bgr, np.full((1, 3), 1 / 3))
    half = _thick_hair_half_width(prob)
    kernel = np.ones((2 * int(np.ceil(2 * half)) + 3,) * 2, np.uint8)
    grey = grey8.astype(np.float32)
    closed = cv2.morphologyEx(grey8, cv2.MORPH_CLOSE, kernel).astype(np.float32)
    opened = cv2.morphologyEx(grey8, cv2.MORPH_OPEN, kernel).astype(np.float32)
    # The same floor as the colour reading: on near-black skin a plain ratio makes a few grey
    # levels of noise look like several times a hair's contrast.
    return (closed - grey) / (closed + 10.0), (grey - opened) / (opened + 10.0)


def _grey_kept(pts, own, other) -> float:
    """Median grey-level contrast along the line in the other photo over that in the own, on
    the side (dark or light hair) that the own photo shows."""
    (own_dark, own_light), (other_dark, other_light) = own, other
    ys, xs = pts[:, 1], pts[:, 0]
    dark, light = float(np.median(own_dark[ys, xs])), float(np.median(own_light[ys, xs]))
    if max(dark, light) <= OWN_RAISED_MIN:
        return 0.0  # the own photo's pixels do not show the hair either: nothing to veto with
    if dark >= light:
        return float(np.median(other_dark[ys, xs])) / dark
    return float(np.median(other_light[ys, xs])) / light


def _contrast_kept(pts, own, other, skin=None) -> float:
    """The share of its contrast over the skin beside it that a hair keeps in the other photo."""
    line, ring = _line_and_ring(pts, own.shape, skin)
    return _raised(other, line, ring) / max(_raised(own, line, ring), 1e-3)


def _raised(contrast, line, ring) -> float:
    """Median contrast on the line over that of the skin beside it."""
    on = float(np.median(contrast[line]))
    return on - float(np.median(contrast[ring])) if ring[0].size >= RING_MIN_PX else on


def _line_and_ring(pts, shape, skin):
    """Index arrays of a centre line and of the skin RING_PX away from it on both sides."""
    r0, r1 = RING_PX
    x0, y0 = np.maximum(pts.min(0) - r1 - 1, 0)
    x1, y1 = np.minimum(pts.max(0) + r1 + 2, (shape[1], shape[0]))
    near = np.ones((y1 - y0, x1 - x0), np.uint8)
    near[pts[:, 1] - y0, pts[:, 0] - x0] = 0
    dist = cv2.distanceTransform(near, cv2.DIST_L2, 3)
    ring = (dist > r0) & (dist <= r1)
    if skin is not None:
        ring &= skin[y0:y1, x0:x1]
    ry, rx = np.nonzero(ring)
    return (pts[:, 1], pts[:, 0]), (ry + y0, rx + x0)


def _confident(chain_pixels, prob) -> np.ndarray:
    """Hairs the network saw clearly (mean coverage on the centre line >= CONFIDENT_PROB).
    Faint detections in a noisy, dark or blurred photo are not evidence of change on their
    own; they go into the matching uncertainty instead."""
    return np.array(
        [len(p) > 0 and float(prob[p[:, 1], p[:, 0]].mean()) >= CONFIDENT_PROB for p in chain_pixels], bool
    ).reshape(-1)


def _mean_caliber(g, presence, mm):
    if mm is None:
        return None
    sel = [i for i, p in enumerate(presence) if p is not None]
    return float(np.mean(g.caliber_px[metrics.measurable(g, sel)]) * mm * 1000) if sel else None


def _paint(pixel_sets, shape):
    m = np.zeros(shape, np.uint8)
    for pts in pixel_sets:
        m[pts[:, 1], pts[:, 0]] = 1
    return cv2.dilate(m, np.ones((3, 3), np.uint8)) > 0


def _coverage_changes(base, fprob, overlap, sigma):
    vis_b = metrics.scalp_visibility(base.prob, overlap)
    vis_f = metrics.scalp_visibility(fprob, overlap)
    none = {"baseline": None, "followup": None, "change_pct": None, "uncertainty_pct": None, "significant": False}
    return {
        "hair_count": dict(none),
        "density_per_cm2": dict(none),
        "mean_caliber_um": dict(none),
        "scalp_visibility": _change(vis_b, vis_f, sigma["scalp_visibility"]),
    }


def _tile_changes(bprob, fprob, overlap, sigma_pct, n=6):
    """Tiles whose hair coverage changed by more than the noise, for the change map."""
    h, w = bprob.shape
    out = []
    for r in range(n):
        for c in range(n):
            ys, xs = slice(r * h // n, (r + 1) * h // n), slice(c * w // n, (c + 1) * w // n)
            ov = overlap[ys, xs]
            if ov.mean() < 0.5:
                continue
            b, f = float(bprob[ys, xs][ov].mean()), float(fprob[ys, xs][ov].mean())
            if b > 0.02 and abs(f - b) / b * 100 > Z * sigma_pct * np.sqrt(n * n / 4):
                out.append(((ys.start, ys.stop, xs.start, xs.stop), np.sign(f - b)))
    return out
