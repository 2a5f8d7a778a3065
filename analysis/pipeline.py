"""The adapter between workers and the imaging engine: bytes in, JSON-safe results and pictures out.

The engine (analysis/engine, no Django) does the measuring: ``analyze_batch``, ``compare_analyses``,
``decode_image``, ``load_segmenter``. This module decides the device, decodes (on the GPU when
there is one), batches, and turns the engine's dataclasses into what is stored. When the network's
weights are not shipped yet, ``ClassicalSegmenter`` (the engine's black-hat detector behind the
same ``predict()``) stands in, so every code path runs and the run records which model it used.

Device and batching: ``Pipeline(device)`` binds one segmenter (loaded once per process). On CUDA,
JPEGs are decoded on the GPU with nvJPEG (``torchvision.io.decode_jpeg(device="cuda")``) in one
batched call, and the network runs in bf16 inside the engine's ``predict``. ``BatchingSegmenter``
lets the worker threads of one GPU process share forward passes (see analysis/batching.py).

Comparisons: within one message (``Pipeline.scope()``) the analyses just made are kept, and the
earlier photo's analysis is rebuilt from its stored coverage map, so comparing runs no network and
prepares, segments and measures nothing twice (``engine.comparison.compare_analyses``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
import numpy as np

from analysis import engine
from analysis.engine import heatmaps, registration, segmentation

log = logging.getLogger(__name__)

BadImage = engine.BadImage  # never retried; its message is shown to the clinician


@dataclass(frozen=True)
class Settings:
    """What one run is computed with; stored on the run (engine_settings) for audit and re-runs."""

    view: str
    mm_per_px: float | None
    sex: str | None
    vellus_um: float = 40.0
    terminal_um: float = 60.0

    def as_dict(self) -> dict:
        return {"view": self.view, "mm_per_px": self.mm_per_px, "sex": self.sex,
                "vellus_um": self.vellus_um, "terminal_um": self.terminal_um}

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        return cls(view=data["view"], mm_per_px=data.get("mm_per_px"), sex=data.get("sex"),
                   vellus_um=data.get("vellus_um", 40.0), terminal_um=data.get("terminal_um", 60.0))


@dataclass
class Outcome:
    """One photo's analysis, reduced to what is stored: metrics JSON, the heatmap as a JPEG (only
    looked at) and the coverage map as a lossless PNG (measured again by later comparisons)."""

    metrics: dict
    quality_ok: bool
    heatmap_jpeg: bytes | None = field(repr=False)
    mask_png: bytes | None = field(repr=False)


@dataclass
class ComparisonOutcome:
    data: dict
    change_map_jpeg: bytes | None


# ---------------------------------------------------------------- decoding


def decode(data: bytes) -> np.ndarray:
    """Stored bytes -> BGR uint8, or BadImage with a reason a clinician can act on."""
    try:
        return engine.decode_image(data)
    except cv2.error as error:
        raise BadImage(f"The stored image cannot be decoded ({error}).") from error


def check_image(image) -> np.ndarray:
    if image is None:
        raise BadImage("The file is not a readable image (JPEG, PNG, TIFF or WebP expected).")
    from analysis.engine.pipeline import check_image as engine_check

    engine_check(image)
    return image


def decode_many(blobs: list[bytes], device: str = "cpu") -> list[np.ndarray | BadImage]:
    """Decode a batch; on CUDA all JPEGs in one nvJPEG call. A bad one yields its BadImage."""
    out: list = [None] * len(blobs)
    if device.startswith("cuda"):
        jpeg_ix = [i for i, b in enumerate(blobs) if b[:3] == b"\xff\xd8\xff"]
        decoded = _decode_jpegs_torch([blobs[i] for i in jpeg_ix], device)
        for i, image in zip(jpeg_ix, decoded, strict=True):
            out[i] = image
    for i, blob in enumerate(blobs):
        try:
            out[i] = check_image(out[i]) if out[i] is not None else decode(blob)
        except BadImage as error:
            out[i] = error
    return out


def _decode_jpegs_torch(blobs: list[bytes], device: str) -> list[np.ndarray | None]:
    """nvJPEG on CUDA (about 7,900 1280×1024 JPEGs/s on an H100 against 160/s per CPU thread)."""
    if not blobs:
        return []
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    try:
        images = decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        # One damaged JPEG fails the whole batched call: fall back to one at a time.
        images = []
        for t in tensors:
            try:
                images.append(decode_jpeg(t, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                images.append(None)
    # CHW RGB on the device -> HWC BGR in host memory, which is what the engine takes. The
    # transposition happens on the device: done by the CPU after the copy it costs 2-4 ms per photo.
    return [None if im is None else im.flip(0).permute(1, 2, 0).contiguous().cpu().numpy() for im in images]


# ---------------------------------------------------------------- the pipeline


class ClassicalSegmenter:
    """The engine's classical detector behind the network's interface (until weights ship)."""

    device = "cpu"
    model_version = "classical-blackhat"

    def predict(self, images, **kwargs):
        return [segmentation.classical_segment(image) for image in images]


class CachingSegmenter:
    """The pipeline's segmenter layer: the seam where ``share_segmenter`` puts the batching, and
    a cache of coverage maps by image content for callers that open a ``scope()`` (per thread).

    The worker's comparisons no longer need the cache (``Pipeline.scope()`` keeps the analyses
    themselves), so ``Pipeline`` does not open one: hashing every network input would cost about
    5 ms of CPU per photo for nothing."""

    def __init__(self, inner):
        self.inner = inner
        self._local = threading.local()
        self.hits = 0

    @property
    def device(self):
        return self.inner.device

    @property
    def model_version(self):
        return self.inner.model_version

    @property
    def overview(self):
        """The inner segmenter's overview network behind the same per-scope cache (a stored
        coverage map of an overview photo came from that network: the model version names both)."""
        inner = getattr(self.inner, "overview", None)
        if inner is None:
            return None
        view = CachingSegmenter(inner)
        view._local = self._local
        return view

    @contextmanager
    def scope(self):
        self._local.entries = {}
        try:
            yield
        finally:
            self._local.entries = None

    def remember(self, image: np.ndarray, coverage: np.ndarray) -> bool:
        """Seed the scope with a map computed earlier (an earlier run's stored coverage)."""
        entries = getattr(self._local, "entries", None)
        if entries is None or image.shape[:2] != coverage.shape[:2]:
            return False
        entries[_content_key(image)] = coverage
        return True

    def predict(self, images, **kwargs):
        entries = getattr(self._local, "entries", None)
        if entries is None:
            return self.inner.predict(list(images), **kwargs)
        keys = [_content_key(image) for image in images]
        missing = {}
        for key, image in zip(keys, images, strict=True):
            if key not in entries and key not in missing:
                missing[key] = image
        if missing:
            entries.update(zip(missing, self.inner.predict(list(missing.values()), **kwargs), strict=True))
        self.hits += len(keys) - len(missing)
        return [entries[key].copy() for key in keys]  # callers may modify theirs


def _content_key(image: np.ndarray) -> tuple:
    data = np.ascontiguousarray(image)
    return (data.shape, data.dtype.str, hashlib.blake2b(memoryview(data).cast("B"), digest_size=16).digest())


class Pipeline:
    def __init__(self, device: str | None = None, batch_size: int = 16):
        self.batch_size = batch_size
        self.segmenter = CachingSegmenter(_load_segmenter(device))
        self.device = self.segmenter.device
        if str(self.device).startswith("cuda"):
            # Comparisons match their image features on the GPU too: the same matches, and the
            # largest CPU cost of a registration (75-200 ms) gone.
            registration.set_matching_device(str(self.device))
        self._local = threading.local()

    @contextmanager
    def scope(self):
        """One message's worth of work: the analyses made inside it are kept until it ends, so a
        comparison reuses the follow-up's preparation, coverage map and hair graph. Per thread."""
        self._local.analyses = []
        try:
            yield
        finally:
            self._local.analyses = None

    @property
    def model_version(self) -> str:
        from analysis.engine.pipeline import model_version

        return model_version(self.segmenter)

    def decode_many(self, blobs: list[bytes]) -> list:
        return decode_many(blobs, self.device)

    def analyze(self, images: list[np.ndarray], settings: list[Settings]) -> list[Outcome | BadImage]:
        """Analyse a batch (the segmenter sees all of it at once); one bad image fails only itself."""
        try:
            return self._analyze_batch(images, settings)
        except BadImage:
            if len(images) == 1:
                raise
        out = []
        for image, s in zip(images, settings, strict=True):
            try:
                out.extend(self._analyze_batch([image], [s]))
            except BadImage as error:
                out.append(error)
        return out

    def _analyze_batch(self, images, settings) -> list[Outcome]:
        # One engine call per (sex, thresholds) group; a visit has one patient and one clinic, so one call.
        groups: dict = {}
        for i, s in enumerate(settings):
            groups.setdefault((s.sex, s.vellus_um, s.terminal_um), []).append(i)
        out: list = [None] * len(images)
        for (sex, vellus, terminal), idx in groups.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                results = engine.analyze_batch(
                    [images[i] for i in chunk], views=[settings[i].view for i in chunk],
                    mm_per_px=[settings[i].mm_per_px for i in chunk], sex=sex,
                    thresholds=engine.Thresholds(vellus, terminal), segmenter=self.segmenter)
                for i, result in zip(chunk, results, strict=True):
                    out[i] = _outcome(result)
                    self._keep(images[i], settings[i], result)
        return out

    def _keep(self, image, settings: Settings, result) -> None:
        kept = getattr(self._local, "analyses", None)
        if kept is None:
            return
        # Stored already; only what a comparison reads stays in memory.
        result.heatmap_bgr = None
        if result.prepared is not None:
            result.prepared.seg_input = None
        kept.append((image, settings, result))

    def _kept(self, image, settings: Settings):
        for kept_image, kept_settings, result in getattr(self._local, "analyses", None) or ():
            if kept_image is image and _same_measuring(kept_settings, settings):
                return result
        return None

    def compare(self, baseline: np.ndarray, followup: np.ndarray, settings: Settings,
                baseline_coverage_png: bytes | None = None) -> ComparisonOutcome:
        """Compare ``followup`` (normally analysed in this scope already) with an earlier photo,
        whose stored coverage map (same model version) spares it the network."""
        from analysis.engine.comparison import compare_analyses

        later = self._kept(followup, settings) or self._analyse_for_comparison(followup, settings)
        comparison = compare_analyses(self._earlier(baseline, settings, baseline_coverage_png), later)
        # The homography (follow-up -> baseline, stored pixels) lets the compare view overlay the photos.
        data = {**comparison.to_dict(), "homography": comparison.homography_original_px()}
        return ComparisonOutcome(_json_safe(data), _jpeg(comparison.change_map_bgr))

    def _earlier(self, image: np.ndarray, settings: Settings, coverage_png: bytes | None):
        coverage = decode_coverage(coverage_png) if coverage_png else None
        if coverage is not None:
            from analysis.engine.comparison import analysis_from_coverage

            try:
                return analysis_from_coverage(image, coverage, view=settings.view, mm_per_px=settings.mm_per_px,
                                              thresholds=engine.Thresholds(settings.vellus_um, settings.terminal_um))
            except ValueError:  # not at the working size the engine derives now: segment the photo again
                log.warning("stored coverage map %s does not fit its photo; segmenting it again", coverage.shape)
        return self._analyse_for_comparison(image, settings)

    def _analyse_for_comparison(self, image: np.ndarray, settings: Settings):
        return engine.analyze_batch([image], views=[settings.view], mm_per_px=[settings.mm_per_px],
                                    thresholds=engine.Thresholds(settings.vellus_um, settings.terminal_um),
                                    segmenter=self.segmenter, with_heatmap=False)[0]


def _same_measuring(a: Settings, b: Settings) -> bool:
    """Sex only changes the severity suggestion, which a comparison does not read."""
    return (a.view, a.mm_per_px, a.vellus_um, a.terminal_um) == (b.view, b.mm_per_px, b.vellus_um, b.terminal_um)


_pipelines: dict[str, Pipeline] = {}
_pipelines_lock = threading.Lock()


def get_pipeline(device: str | None = None, batch_size: int = 16) -> Pipeline:
    """One pipeline (and so one loaded network) per process and device."""
    key = f"{device or 'auto'}:{batch_size}"
    with _pipelines_lock:
        if key not in _pipelines:
            started = time.monotonic()
            _pipelines[key] = Pipeline(device, batch_size)
            log.info("analysis pipeline %s on %s ready in %.1f s", _pipelines[key].model_version,
                     _pipelines[key].device, time.monotonic() - started)
        return _pipelines[key]


def _load_segmenter(device):
    try:
        return engine.load_segmenter(device=device or None)
    except FileNotFoundError as error:
        log.warning("no segmentation weights (%s); using the classical hair detector", error)
        return ClassicalSegmenter()


def _outcome(result) -> Outcome:
    metrics = _json_safe(result.to_dict())
    quality = metrics.get("quality") or {}
    coverage = getattr(result, "prob", None)
    return Outcome(metrics=metrics, quality_ok=bool(quality.get("ok", True)), heatmap_jpeg=_jpeg(result.heatmap_bgr),
                   mask_png=coverage_png(coverage) if coverage is not None else None)


def _jpeg(picture: np.ndarray | None) -> bytes | None:
    return None if picture is None else heatmaps.to_jpeg(picture)


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def coverage_png(coverage: np.ndarray) -> bytes:
    """The hair-coverage map as an 8-bit grey PNG at the engine's working resolution: hair where
    the value is ≥ 128 (the engine's 0.5 threshold), and enough to measure again without the network."""
    grey = np.clip(np.rint(np.asarray(coverage, np.float32) * 255), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", grey, heatmaps.PNG_FAST)  # half the time of level 1 alone, and smaller
    return encoded.tobytes()


def decode_coverage(data: bytes) -> np.ndarray | None:
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if grey is None or grey.ndim != 2:
        return None
    return grey.astype(np.float32) / 255.0
