"""Trichotrack imaging engine: scalp photo -> calibrated, quality-checked hair measurements.

Pure Python + numpy/OpenCV/PyTorch; never imports Django (see docs/ENGINE.md)."""

from __future__ import annotations

import json
from pathlib import Path

from .card import make_calibration_card_pdf
from .comparison import Comparison, compare_images
from .metrics import METRICS_VERSION
from .pipeline import VIEWS, BadImage, ImageAnalysis, Thresholds, analyze_batch, analyze_image, decode_image
from .segmentation import Segmenter, load_segmenter


def _model_version() -> str:
    meta = Path(__file__).resolve().parent / "weights" / "unet.json"
    seg = json.loads(meta.read_text()).get("version", "unknown") if meta.exists() else "untrained"
    return f"{seg}+metrics-{METRICS_VERSION}"


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
