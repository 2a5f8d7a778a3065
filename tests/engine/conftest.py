"""Engine tests: pure numpy/OpenCV/torch, small images, no database."""

import numpy as np
import pytest
import torch

from analysis.engine import phantoms

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def segmenter():
    from analysis.engine import load_segmenter

    return load_segmenter("cpu")


@pytest.fixture(scope="session")
def tricho():
    """A fixed small trichoscopy phantom (golden-output image)."""
    return phantoms.trichoscopy_phantom(123, size_px=(320, 240), mm_per_px=0.008, strength=0.5)


def lines_coverage(lines, width, size=200):
    """Exact coverage of straight hairs drawn at 4x and averaged down."""
    import cv2

    img = np.zeros((size * 4, size * 4), np.uint8)
    for x0, y0, x1, y1 in lines:
        cv2.line(img, (int(x0 * 64), int(y0 * 64)), (int(x1 * 64), int(y1 * 64)), 255, int(width * 4), cv2.LINE_8, 4)
    return cv2.resize(img.astype(np.float32) / 255, (size, size), interpolation=cv2.INTER_AREA)
