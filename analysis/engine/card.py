"""The printable calibration card: one layout used by the PDF, the phantoms and the detector.

Everything is defined in millimetres on the card plane so that the PDF, the synthetic card
rendered into phantoms and the detector cannot disagree about geometry.
"""

from __future__ import annotations

import cv2
import numpy as np

CARD_W_MM = 90.0
CARD_H_MM = 60.0
MARKER_MM = 14.0
MARGIN_MM = 4.0
ARUCO_DICT = cv2.aruco.DICT_4X4_50
MARKER_IDS = (0, 1, 2, 3)
# Printed sRGB grey levels, light to dark; the middle one is the exposure reference.
GREY_LEVELS = (245, 200, 150, 100, 35)
# Colour patches in RGB (red, green, blue, light skin, dark skin).
COLOUR_PATCHES_RGB = ((200, 40, 40), (40, 160, 60), (40, 60, 190), (225, 185, 160), (110, 75, 55))
PATCH_MM = 9.0
GREY_ROW_Y_MM = 20.0
COLOUR_ROW_Y_MM = 32.0
PATCH_X0_MM = 22.0
PATCH_STEP_MM = 9.5
INSTRUCTIONS = (
    "Trichotrack calibration card - print at 100% (no 'fit to page').",
    f"Check: each black square marker is {MARKER_MM:.0f} mm wide.",
    "Hold the card flat, next to the scalp area, in the same plane.",
    "Keep all four corner markers in the photo, no glare, no shadow.",
)


def marker_origins_mm() -> dict[int, tuple[float, float]]:
    """Top-left corner of each marker on the card, keyed by ArUco id (clockwise from top-left)."""
    right = CARD_W_MM - MARGIN_MM - MARKER_MM
    bottom = CARD_H_MM - MARGIN_MM - MARKER_MM
    return {0: (MARGIN_MM, MARGIN_MM), 1: (right, MARGIN_MM), 2: (right, bottom), 3: (MARGIN_MM, bottom)}


def marker_corners_mm(marker_id: int) -> np.ndarray:
    """The four corners in ArUco order (TL, TR, BR, BL) in card millimetres."""
    x, y = marker_origins_mm()[marker_id]
    s = MARKER_MM
    return np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], np.float32)


def marker_bits(marker_id: int) -> np.ndarray:
    """6x6 cell bitmap (True = black) including the one-cell black border."""
    dictionary = cv2.aruco.getPredefinedDictionary(ARUCO_DICT)
    img = cv2.aruco.generateImageMarker(dictionary, marker_id, 6)
    return img < 128


def patch_rects_mm() -> list[tuple[str, tuple[float, float, float, float], tuple[int, int, int]]]:
    """(name, (x, y, w, h) in mm, RGB) for every grey and colour patch."""
    rects = []
    for i, g in enumerate(GREY_LEVELS):
        rects.append((f"grey{i}", (PATCH_X0_MM + i * PATCH_STEP_MM, GREY_ROW_Y_MM, PATCH_MM, PATCH_MM), (g, g, g)))
    for i, rgb in enumerate(COLOUR_PATCHES_RGB):
        x = PATCH_X0_MM + i * PATCH_STEP_MM
        rects.append((f"colour{i}", (x, COLOUR_ROW_Y_MM, PATCH_MM, PATCH_MM), rgb))
    return rects


def render_card_bgr(px_per_mm: float = 8.0) -> np.ndarray:
    """Raster of the card (BGR) at a given resolution, for phantoms and tests."""
    w, h = int(round(CARD_W_MM * px_per_mm)), int(round(CARD_H_MM * px_per_mm))
    card = np.full((h, w, 3), 250, np.uint8)
    for mid in MARKER_IDS:
        bits = marker_bits(mid)
        x0, y0 = marker_origins_mm()[mid]
        cell = MARKER_MM / 6.0
        for r in range(6):
            for c in range(6):
                if bits[r, c]:
                    p0 = (int(round((x0 + c * cell) * px_per_mm)), int(round((y0 + r * cell) * px_per_mm)))
                    p1 = (
                        int(round((x0 + (c + 1) * cell) * px_per_mm)) - 1,
                        int(round((y0 + (r + 1) * cell) * px_per_mm)) - 1,
                    )
                    cv2.rectangle(card, p0, p1, (0, 0, 0), -1)
    for _, (x, y, pw, ph), rgb in patch_rects_mm():
        p0 = (int(round(x * px_per_mm)), int(round(y * px_per_mm)))
        p1 = (int(round((x + pw) * px_per_mm)) - 1, int(round((y + ph) * px_per_mm)) - 1)
        cv2.rectangle(card, p0, p1, tuple(int(v) for v in rgb[::-1]), -1)
    return card


def make_calibration_card_pdf(path_or_file, page_size: str = "A4") -> None:
    """Write a printable PDF: the card at true scale, a 50 mm check ruler and instructions."""
    from reportlab.lib.pagesizes import A4, LETTER
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    size = {"A4": A4, "LETTER": LETTER}.get(page_size.upper())
    if size is None:
        raise ValueError(f"page_size must be A4 or LETTER, not {page_size!r}")
    c = canvas.Canvas(path_or_file, pagesize=size)
    page_w, page_h = size
    ox, oy = 20 * mm, page_h - 30 * mm - CARD_H_MM * mm

    def rect(x_mm, y_mm, w_mm, h_mm, rgb):
        # Card coordinates grow downwards; PDF coordinates grow upwards.
        c.setFillColorRGB(*(v / 255 for v in rgb))
        c.rect(ox + x_mm * mm, oy + (CARD_H_MM - y_mm - h_mm) * mm, w_mm * mm, h_mm * mm, stroke=0, fill=1)

    c.setStrokeColorRGB(0.6, 0.6, 0.6)
    c.rect(ox, oy, CARD_W_MM * mm, CARD_H_MM * mm, stroke=1, fill=0)
    cell = MARKER_MM / 6.0
    for mid in MARKER_IDS:
        x0, y0 = marker_origins_mm()[mid]
        bits = marker_bits(mid)
        for r in range(6):
            for col in range(6):
                if bits[r, col]:
                    rect(x0 + col * cell, y0 + r * cell, cell, cell, (0, 0, 0))
    for _, (x, y, pw, ph), rgb in patch_rects_mm():
        rect(x, y, pw, ph, rgb)
    c.setFillColorRGB(0, 0, 0)
    c.setFont("Helvetica", 7)
    c.drawString(ox + PATCH_X0_MM * mm, oy + (CARD_H_MM - 48) * mm, "Trichotrack calibration card v1")
    y = oy - 12 * mm
    c.setLineWidth(0.5)
    c.line(ox, y, ox + 50 * mm, y)
    for k in range(6):
        c.line(ox + k * 10 * mm, y - 2 * mm, ox + k * 10 * mm, y + 2 * mm)
    c.setFont("Helvetica", 9)
    c.drawString(ox + 55 * mm, y - 1 * mm, "50 mm: measure this line to check the print scale")
    c.setFont("Helvetica", 10)
    for i, line in enumerate(INSTRUCTIONS):
        c.drawString(ox, y - (12 + 6 * i) * mm, line)
    c.showPage()
    c.save()
