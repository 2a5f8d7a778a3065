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


def test_matching_on_a_torch_device_gives_the_brute_force_matches(monkeypatch):
    base = phantoms.trichoscopy_phantom(31, size_px=(640, 480), mm_per_px=0.008)
    follow = phantoms.follow_up(base, 38, change_fraction=-0.1, strength=0.5)
    _, db, _ = registration.features(base.image)
    _, df, _ = registration.features(follow.image)
    query, train = registration.ratio_matches(df, db)
    on_device = registration.ratio_matches(df, db, "cpu")
    assert len(query) > 50 and len(query) < len(df)  # the ratio test keeps some and drops some
    assert np.array_equal(on_device[0], query) and np.array_equal(on_device[1], train)
    plain = registration.register(base.image, follow.image)
    monkeypatch.setattr(registration, "_matching_device", "cpu")
    assert np.array_equal(registration.register(base.image, follow.image).homography, plain.homography)
