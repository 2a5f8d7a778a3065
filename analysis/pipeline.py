"""The adapter between workers and the imaging engine: bytes in, JSON-safe results and PNGs out.

The engine (analysis/engine, no Django) does the measuring: ``analyze_batch``, ``compare_images``,
``decode_image``, ``load_segmenter``. This module decides the device, decodes (on the GPU when
there is one), batches, and turns the engine's dataclasses into what is stored. When the network's
weights are not shipped yet, ``ClassicalSegmenter`` (the engine's black-hat detector behind the
same ``predict()``) stands in, so every code path runs and the run records which model it used.

Device and batching: ``Pipeline(device)`` binds one segmenter (loaded once per process). On CUDA,
JPEGs are decoded on the GPU with nvJPEG (``torchvision.io.decode_jpeg(device="cuda")``) in one
batched call, and the network runs in bf16 inside the engine's ``predict``. ``BatchingSegmenter``
lets the worker threads of one GPU process share forward passes (see analysis/batching.py).
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
from analysis.engine import segmentation

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
    """One photo's analysis, reduced to what is stored: metrics JSON and PNG bytes."""

    metrics: dict
    quality_ok: bool
    heatmap_png: bytes | None = field(repr=False)
    mask_png: bytes | None = field(repr=False)


@dataclass
class ComparisonOutcome:
    data: dict
    change_map_png: bytes | None


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
    # CHW RGB on the device -> HWC BGR in host memory, which is what the engine takes.
    return [None if im is None else np.ascontiguousarray(im.flip(0).permute(1, 2, 0).cpu().numpy())
            for im in images]


# ---------------------------------------------------------------- the pipeline


class ClassicalSegmenter:
    """The engine's classical detector behind the network's interface (until weights ship)."""

    device = "cpu"
    model_version = "classical-blackhat"

    def predict(self, images, **kwargs):
        return [segmentation.classical_segment(image) for image in images]


class CachingSegmenter:
    """Remembers coverage maps within one message (``scope()``), keyed by image content.

    ``compare_images`` segments the baseline *and* the follow-up again; the follow-up was just
    segmented by ``analyze``, so inside a scope that second pass is a cache hit and a comparison
    costs one segmentation instead of two. Scopes are per thread (one message per thread)."""

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

    def scope(self):
        """One message's worth of work: coverage maps are reused inside it."""
        return self.segmenter.scope()

    def reuse_coverage(self, image: np.ndarray, settings: Settings, coverage_png: bytes) -> bool:
        """Let a comparison use the earlier photo's stored coverage map instead of segmenting it again.

        The map is keyed by the network input the engine derives from the photo (its ``prepare()``,
        deterministic and far cheaper than the network); should the engine ever derive it otherwise,
        the key no longer matches and the photo is simply segmented again."""
        coverage = decode_coverage(coverage_png)
        if coverage is None:
            return False
        from analysis.engine.pipeline import prepare

        prepared = prepare(image, settings.view, settings.mm_per_px)
        network_input = getattr(prepared, "seg_input", None)
        return self.segmenter.remember(prepared.work if network_input is None else network_input, coverage)

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
        return out

    def compare(self, baseline: np.ndarray, followup: np.ndarray, settings: Settings) -> ComparisonOutcome:
        comparison = engine.compare_images(
            baseline, followup, view=settings.view, mm_per_px=settings.mm_per_px,
            thresholds=engine.Thresholds(settings.vellus_um, settings.terminal_um), segmenter=self.segmenter)
        # The homography (follow-up -> baseline, stored pixels) lets the compare view overlay the photos.
        data = {**comparison.to_dict(), "homography": comparison.homography_original_px()}
        return ComparisonOutcome(_json_safe(data), comparison.change_map_png())


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
    return Outcome(metrics=metrics, quality_ok=bool(quality.get("ok", True)), heatmap_png=result.heatmap_png(),
                   mask_png=coverage_png(coverage) if coverage is not None else None)


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
    ok, encoded = cv2.imencode(".png", grey, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return encoded.tobytes()


def decode_coverage(data: bytes) -> np.ndarray | None:
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if grey is None or grey.ndim != 2:
        return None
    return grey.astype(np.float32) / 255.0
