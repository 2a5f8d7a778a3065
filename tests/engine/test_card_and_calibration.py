import cv2
import numpy as np

from analysis.engine import calibration, card, make_calibration_card_pdf


def _photo_of_card(px_per_mm=4.0, angle=20.0):
    raster = card.render_card_bgr(px_per_mm)
    h, w = raster.shape[:2]
    canvas = np.full((h + 200, w + 200, 3), 120, np.uint8)
    canvas[100 : 100 + h, 100 : 100 + w] = raster
    m = cv2.getRotationMatrix2D((canvas.shape[1] / 2, canvas.shape[0] / 2), angle, 1.0)
    return cv2.warpAffine(canvas, m, (canvas.shape[1], canvas.shape[0]), borderValue=(120, 120, 120))


def test_it_writes_a_printable_pdf(tmp_path):
    out = tmp_path / "card.pdf"
    make_calibration_card_pdf(str(out))
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 1000


def test_it_finds_the_card_scale_and_no_tilt_in_a_frontal_photo():
    cal = calibration.calibrate(_photo_of_card(4.0))
    assert cal.source == "card" and cal.markers_found == 4
    assert abs(cal.mm_per_px - 0.25) / 0.25 < 0.02
    assert cal.tilt_deg < 4
    assert cal.card_mask((10, 10)) is not None


def test_it_measures_tilt_from_foreshortening():
    img = _photo_of_card(4.0, 0)
    h, w = img.shape[:2]
    squash = cv2.resize(img, (w, int(h * np.cos(np.radians(30)))))  # 30 degrees about the horizontal axis
    cal = calibration.calibrate(squash)
    assert abs(cal.tilt_deg - 30) < 3


def test_it_returns_a_white_balance_from_the_grey_patch():
    img = _photo_of_card(4.0).astype(np.float32)
    img[..., 2] *= 1.2  # reddish cast
    cal = calibration.calibrate(np.clip(img, 0, 255).astype(np.uint8))
    b, g, r = cal.gains_bgr
    assert r < g * 0.9 and abs(b - g) < 0.05


def test_without_a_card_it_uses_the_given_scale_or_none():
    blank = np.full((300, 300, 3), 128, np.uint8)
    assert calibration.calibrate(blank, 0.01).to_dict() == {"mm_per_px": 0.01, "tilt_deg": None, "source": "given"}
    assert calibration.calibrate(blank).source == "none"
