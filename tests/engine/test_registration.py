import cv2
import numpy as np

from analysis.engine import phantoms, registration


def test_it_recovers_a_rotation_and_shift():
    img = phantoms.trichoscopy_phantom(21, size_px=(480, 360), mm_per_px=0.008).image
    m = cv2.getRotationMatrix2D((240, 180), 12, 1.0)
    m[:, 2] += (15, -10)
    moved = cv2.warpAffine(img, m, (480, 360))
    reg = registration.register(img, moved)
    assert reg.ok and reg.inliers >= registration.MIN_INLIERS
    # moved -> original must undo the transform
    pt = np.float32([[[240, 180]]])
    back = cv2.perspectiveTransform(cv2.transform(pt, m), reg.homography)
    assert np.abs(back - pt).max() < 2


def test_unrelated_images_do_not_register():
    a = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    b = np.full((300, 300, 3), 100, np.uint8)
    assert not registration.register(a, b).ok


def test_overlap_mask_of_identity_is_everything_but_a_margin():
    m = registration.overlap_mask(np.eye(3), (50, 60), (50, 60), erode_px=2)
    assert m.shape == (50, 60) and m.all()  # the image edge is the overlap's edge, not a seam
