"""Quality gate: can this photo be measured, and (for a follow-up) compared with its baseline?

Every failure carries a code (for software) and a reason a patient or nurse can act on."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .calibration import Calibration

MIN_SIDE = {"trichoscopy": 300, "overview": 800}
MAX_TILT_DEG = 15.0
MAX_CLIPPED = 0.05
MIN_SHARPNESS = 1.40  # gradient ratio, see sharpness(); about 2 px of blur
EDGE_SHARE = 0.01  # the strongest edges that focus is read on
FOLLOWUP_LIMITS = {"exposure": 0.6, "tilt_deg": 10.0, "scale": 0.25, "sharpness": 0.7}
MAX_HAIR_REDNESS = 1.48  # see hair_redness(); trained colours <= 1.41, red >= 1.56 (benchmark_accuracy --hair-colour)
# hair_contrast() below this: two photos of the same scalp disagree far more (ENGINE.md step 7)
LOW_HAIR_CONTRAST = 0.3
HAIR_CORE_PROB = 0.9  # coverage of a shaft's core, not its blurred edge
BARE_SKIN_PROB = 0.05
MIN_CONTRAST_PX = 50  # fewer hair or skin pixels than this: no contrast to tell


@dataclass
class QualityReport:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    measures: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "reasons": list(self.reasons)}

    def fail(self, code: str, reason: str) -> None:
        self.ok = False
        self.note(code, reason)

    def note(self, code: str, reason: str) -> None:
        """A caveat that does not fail the photo: it is measured, but the reader should know."""
        self.codes.append(code)
        self.reasons.append(reason)


def sharpness(grey: np.ndarray) -> float:
    """Edge sharpness independent of content and contrast, measured edge by edge.

    At the strongest edges (the top EDGE_SHARE of gradient after a 2 px blur), each edge's
    strongest gradient within 2 px at a fine scale (0.7 px) is divided by its own gradient at
    the coarse scale. A step edge blurred by sigma b gives sqrt(b^2 + 2^2) / sqrt(b^2 + 0.7^2):
    about 2.9 when sharp, 1.2 at b = 2.5 px. The lower quartile over those edges reads step
    edges (a thick shaft's, the card's); thin lines (vellus hair, the device's burned-in text)
    read sharper than steps and sit above it.

    Edge by edge, because the strongest gradients of a whole photo at the two scales can come
    from different things: a white flake's wide edge leads at 2 px, a dark hair's at 0.7 px,
    and a sharp photo of brown hair on brown skin with a few flakes read as blurred.
    Measured on a copy of at most 1000 px, so it is about the resolution actually used."""
    h, w = grey.shape
    s = min(1.0, 1000.0 / max(h, w))
    g = cv2.resize(grey, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else grey
    g = g.astype(np.float32)
    fine = cv2.dilate(_gradient(g, 0.7), np.ones((5, 5), np.uint8))
    coarse = _gradient(g, 2.0)
    edges = (coarse >= np.percentile(coarse, 100 * (1 - EDGE_SHARE))) & (coarse > 1e-3)
    if not edges.any():
        return 0.0  # a flat image has no edge to be sharp
    return float(np.percentile(fine[edges] / coarse[edges], 25))


def _gradient(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gradient magnitude after a Gaussian blur of `sigma` px."""
    b = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.magnitude(cv2.Sobel(b, cv2.CV_32F, 1, 0), cv2.Sobel(b, cv2.CV_32F, 0, 1))


def measure(image_bgr: np.ndarray, scalp: np.ndarray | None = None) -> dict:
    """Exposure statistics on a copy of at most 1000 px: they are global, and a 12 MP photo
    would otherwise spend a third of a second here. With `scalp` (bool per pixel) only those
    pixels count: the black surround of a dermoscope's lens is neither dark exposure nor an edge.
    Focus is read in grey, which JPEG keeps at full resolution (its colour is coarser), and
    edge by edge, so red hair with nearly the skin's luminance still reads sharp (`sharpness`)."""
    h, w = image_bgr.shape[:2]
    s = min(1.0, 1000.0 / max(h, w))
    small = cv2.resize(image_bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else image_bgr
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    seen = None
    if scalp is not None and not scalp.all():
        seen = cv2.resize(scalp.astype(np.uint8), grey.shape[::-1], interpolation=cv2.INTER_NEAREST)
        seen = seen if seen.any() else None
    if seen is None:
        hist = np.bincount(grey.ravel(), minlength=256)
        # The exact integer sums divided as numpy's mean does, without its slow strided reduction.
        mean_bgr = [float(v) / (small.shape[0] * small.shape[1]) for v in cv2.sumElems(small)[:3]]
    else:
        hist = cv2.calcHist([grey], [0], seen, [256], [0, 256]).ravel().astype(np.int64)
        mean_bgr = [float(v) for v in cv2.mean(small, mask=seen)[:3]]
        grey = np.where(seen > 0, grey, np.uint8(median_from_histogram(hist)))  # the lens's rim is no edge
    n = max(int(hist.sum()), 1)
    return {
        "sharpness": sharpness(grey),
        "median_luma": median_from_histogram(hist),
        "dark_clipped": float(hist[:4].sum() / n),
        "bright_clipped": float(hist[250:].sum() / n),  # white-out, not one saturated channel
        "min_side": int(min(h, w)),
        "mean_bgr": mean_bgr,
    }


def median_from_histogram(hist: np.ndarray) -> float:
    """np.median of integer values given their histogram (counts per value), to the bit: the
    middle value, or the mean of the two middle ones. A 256-bin histogram of a uint8 image takes
    about 1 ms where np.median's partition takes 2-40 ms."""
    n = int(hist.sum())
    if n == 0:
        return float("nan")
    cum = np.cumsum(hist)
    lo = int(np.searchsorted(cum, (n - 1) // 2, side="right"))
    hi = int(np.searchsorted(cum, n // 2, side="right"))
    return (lo + hi) / 2.0


REDNESS_WORK_SIDE = 640  # a colour statistic: a small copy tells as much as the full photo
REDNESS_MIN_LEVEL = 48  # darker pixels (black hair, very dark skin) have no reliable colour
REDNESS_BLUR_PX = 1.0
REDNESS_OFFSET = 12.0  # added before the logarithm so that sensor noise in dark pixels is not read as colour


def hair_redness(image_bgr: np.ndarray, scalp: np.ndarray) -> float | None:
    """How red the redder of the photo's two colour populations is, for spotting red or dyed
    hair. The network was never trained on such hair and barely sees it in colour, but sees it
    well in grey (docs/ACCURACY.md).

    Redness per pixel is log(R^2 / (G B)): the same at any exposure; 2.4-2.6 for pure red and
    auburn hair, at most about 1.2 for black, brown, blonde and grey hair and for every skin
    tone. A colour cast shifts it (by up to 0.35 for the phantoms' ±12% per channel, which the
    measured margin includes); a white balance further off than that could cross the limit.
    The scalp's pixels are split in two by redness (Otsu), which separates hair from skin when
    their colours differ; the value is the median of the redder group's redder half, so
    thin hairs blended with skin do not pull it down. None when too little is seen."""
    h, w = image_bgr.shape[:2]
    s = min(1.0, REDNESS_WORK_SIDE / max(h, w))
    small = cv2.resize(image_bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else image_bgr
    # Sensor noise and JPEG's coarse colour make single pixels of dark skin look red or blue.
    b, g, r = cv2.split(cv2.GaussianBlur(small, (0, 0), REDNESS_BLUR_PX))
    seen = cv2.resize(scalp.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    seen &= cv2.max(cv2.max(b, g), r) >= REDNESS_MIN_LEVEL
    if seen.sum() < 200:
        return None
    lb, lg, lr = (np.log(c[seen].astype(np.float32) + REDNESS_OFFSET) for c in (b, g, r))
    red = 2 * lr - lg - lb
    levels = np.clip((red + 1) * 50, 0, 255).astype(np.uint8)  # Otsu needs 8 bits: -1..4.1
    t, _ = cv2.threshold(levels[None], 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    redder = red[levels > t]
    if redder.size < 20:
        return None
    return float(np.median(redder[redder >= np.median(redder)]))


def red_hair(measures: dict) -> bool:
    """Is the hair red or dyed (see hair_redness)? Then the network is shown the photo in grey."""
    redness = measures.get("hair_redness")
    return redness is not None and redness > MAX_HAIR_REDNESS


def hair_contrast(image_bgr: np.ndarray, prob: np.ndarray, valid: np.ndarray | None = None) -> float | None:
    """How far the hair's colour is from the scalp's: the distance between the median colours of
    the hairs' cores and of bare skin, over the skin's brightness (so exposure cancels). It needs
    the coverage map to tell the two apart. On phantoms brown hair on very dark skin reads about
    0.15-0.19, blonde on very light 0.21-0.25, grey on medium 0.24-0.32, brown on tan 0.47,
    black on light skin 0.86 and blonde on very dark skin 2.0-2.2. Medians over the whole field,
    not local contrast: a dense field, whose local background is hair, is not low-contrast."""
    core, skin = prob > HAIR_CORE_PROB, prob < BARE_SKIN_PROB
    if valid is not None:
        core, skin = core & valid, skin & valid
    if core.sum() < MIN_CONTRAST_PX or skin.sum() < MIN_CONTRAST_PX:
        return None
    hair_colour, skin_colour = channel_medians(image_bgr, core), channel_medians(image_bgr, skin)
    return round(float(np.linalg.norm(hair_colour - skin_colour) / (np.linalg.norm(skin_colour) + 10.0)), 4)


def low_contrast(measures: dict) -> bool:
    """Does hair stand out little from the scalp (see hair_contrast)? Measured after
    segmentation, so only analysed photos carry it."""
    contrast = measures.get("hair_contrast")
    return contrast is not None and contrast < LOW_HAIR_CONTRAST


def with_hair_contrast(rep: QualityReport, contrast: float | None) -> QualityReport:
    """A copy of `rep` that knows the hair's contrast, with the low-contrast caveat when it is
    low. A copy, so that measuring one prepared photo twice (another coverage map) notes it once."""
    out = QualityReport(rep.ok, measures={**rep.measures, "hair_contrast": contrast})
    for code, reason in zip(rep.codes, rep.reasons, strict=True):
        if code != "low_contrast":
            out.codes.append(code)
            out.reasons.append(reason)
    _note_low_contrast(out)
    return out


def _note_low_contrast(rep: QualityReport) -> None:
    if low_contrast(rep.measures):
        rep.note(
            "low_contrast",
            "Hair and scalp differ little in colour in this photo (for example brown hair on dark "
            "skin, or blonde hair on light skin): its numbers are less certain, and a change "
            "must be larger to be flagged.",
        )


def channel_medians(image_bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """np.median(image_bgr[mask], axis=0) for a uint8 image, from per-channel histograms (about
    3 ms for 1280x1024 instead of about 40)."""
    m = mask.astype(np.uint8)
    return np.array(
        [
            median_from_histogram(cv2.calcHist([image_bgr], [c], m, [256], [0, 256]).ravel().astype(np.int64))
            for c in range(image_bgr.shape[2])
        ]
    )


def assess(
    image_bgr: np.ndarray,
    view: str,
    calibration: Calibration,
    baseline: dict | None = None,
    scalp: np.ndarray | None = None,
) -> QualityReport:
    """Check one photo; `baseline` is the measures dict of the first photo of the same view,
    `scalp` the pixels that show scalp (all when None)."""
    return assess_measures(measure(image_bgr, scalp), view, calibration, baseline)


def assess_measures(measures: dict, view: str, calibration: Calibration, baseline: dict | None = None) -> QualityReport:
    """The checks of `assess` on measures taken earlier (a report's `measures`): a follow-up
    already analysed is checked against its baseline without measuring the photo again."""
    m = dict(measures)
    m["tilt_deg"] = calibration.tilt_deg
    m["mm_per_px"] = calibration.mm_per_px
    rep = QualityReport(True, measures=m)
    kind = "trichoscopy" if view == "trichoscopy" else "overview"
    if m["min_side"] < MIN_SIDE[kind]:
        rep.fail(
            "resolution",
            f"The photo is too small ({m['min_side']} px on its short side; at least "
            f"{MIN_SIDE[kind]} needed): send the original photo, not a screenshot or thumbnail.",
        )
    if m["sharpness"] < MIN_SHARPNESS:
        rep.fail("focus", "The photo is blurred: hold the camera still, tap the scalp on screen to focus, and retake.")
    if m["dark_clipped"] > MAX_CLIPPED or m["median_luma"] < 18:
        rep.fail("too_dark", "The photo is too dark: add light (no flash glare) and retake.")
    if m["bright_clipped"] > MAX_CLIPPED or m["median_luma"] > 240:
        rep.fail(
            "too_bright", "The photo is overexposed: move away from direct light or switch the flash off, and retake."
        )
    if kind == "overview" and calibration.source == "none":
        rep.fail(
            "no_card",
            "The calibration card was not found: lay it flat beside the area with all four "
            "black corner squares visible, and retake.",
        )
    if red_hair(m):
        rep.note(
            "red_hair",
            "The hair looks red or dyed, so it was measured from the photo in grey: its numbers "
            "are less accurate than for black, brown, blonde or grey hair.",
        )
    _note_low_contrast(rep)
    if calibration.tilt_deg is not None and calibration.tilt_deg > MAX_TILT_DEG:
        rep.fail(
            "tilt",
            f"The camera is tilted {calibration.tilt_deg:.0f} degrees: hold the phone parallel to the "
            "scalp (and the card) and retake.",
        )
    if baseline is not None:
        _compare_conditions(rep, m, baseline)
    return rep


def _compare_conditions(rep: QualityReport, m: dict, base: dict) -> None:
    """Photography is the biggest source of false change: flag follow-ups shot differently."""
    if base.get("median_luma") and m["median_luma"]:
        ratio = m["median_luma"] / max(base["median_luma"], 1.0)
        if abs(np.log(ratio)) > np.log(1 + FOLLOWUP_LIMITS["exposure"]):
            word = "brighter" if ratio > 1 else "darker"
            rep.fail(
                "match_exposure",
                f"This photo is {abs(ratio - 1) * 100:.0f}% {word} than your first session: "
                "use the same room and light as then, and retake.",
            )
    if m.get("tilt_deg") is not None and base.get("tilt_deg") is not None:
        d = abs(m["tilt_deg"] - base["tilt_deg"])
        if d > FOLLOWUP_LIMITS["tilt_deg"]:
            rep.fail("match_tilt", f"Retake: the photo is {d:.0f} degrees tilted compared with your first session.")
    if m.get("mm_per_px") and base.get("mm_per_px"):
        r = m["mm_per_px"] / base["mm_per_px"]
        if abs(np.log(r)) > np.log(1 + FOLLOWUP_LIMITS["scale"]):
            closer = "closer to" if r > 1 else "further from"
            rep.fail(
                "match_distance",
                f"The camera was at a different distance than in your first session: hold it "
                f"{closer} the head (fill the frame the same way) and retake.",
            )
    if base.get("sharpness") and m["sharpness"] < base["sharpness"] * FOLLOWUP_LIMITS["sharpness"]:
        rep.fail("match_focus", "This photo is much less sharp than your first session: hold still and retake.")
