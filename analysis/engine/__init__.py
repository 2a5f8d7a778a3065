"""Trichotrack imaging engine: scalp photo -> calibrated, quality-checked hair measurements.

Pure Python + numpy/OpenCV/PyTorch; never imports Django (see docs/ENGINE.md)."""

from __future__ import annotations

import json
from pathlib import Path

from .card import make_calibration_card_pdf
from .comparison import Comparison, compare_images
from .pipeline import (
    VIEWS,
    BadImage,
    ImageAnalysis,
    Thresholds,
    analyze_batch,
    analyze_image,
    decode_image,
    versions,
)
from .segmentation import OVERVIEW_NAME, Segmenter, load_segmenter


def _model_version() -> str:
    """The version string analyze_batch() stamps on results, read without loading any network."""
    weights = Path(__file__).resolve().parent / "weights"

    def version(name, missing):
        meta = weights / name
        return json.loads(meta.read_text()).get("version", "unknown") if meta.exists() else missing

    segmenter = version("unet.json", "untrained")
    overview = version(f"{OVERVIEW_NAME}.json", None)  # as Segmenter.model_version names the pair
    return versions(segmenter + (f"+{overview}" if overview else ""), version("counter.json", None))


MODEL_VERSION: str = _model_version()

__all__ = [
    "VIEWS",
    "MODEL_VERSION",
    "Thresholds",
    "BadImage",
    "decode_image",
    "load_segmenter",
    "Segmenter",
    "analyze_image",
    "analyze_batch",
    "ImageAnalysis",
    "compare_images",
    "Comparison",
    "make_calibration_card_pdf",
]
