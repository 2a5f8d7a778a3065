"""Saved analysis results for workspace tests and screenshots, written the way the workers save
them (run done → PhotoResult → PhotoComparison rows), without the engine or the workers."""

import datetime
import hashlib
import io
import uuid

import numpy as np
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from analysis.models import AnalysisRun, PhotoComparison, PhotoResult
from clinic.tenancy import operator_context
from patients import services
from patients.models import Patient, Photo, SeverityGrade, View, Visit

MODEL_VERSION = "unet-b16-2026.11"
DEFAULT_VIEWS = [View.CROWN, View.HAIRLINE, View.TEMPLE_LEFT, View.PART_LINE, View.TRICHOSCOPY]
BASE_DENSITY = {View.CROWN: 168.0, View.HAIRLINE: 182.0, View.TEMPLE_LEFT: 150.0, View.TEMPLE_RIGHT: 152.0,
                View.PART_LINE: 175.0, View.TRICHOSCOPY: 205.0}


def scalp_pixels(width=320, height=240, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), (196, 160, 140), dtype=np.uint8)
    for _ in range(width * height // 190):
        x, y = rng.integers(0, width), rng.integers(0, height)
        img[max(0, y - 6):y, x:x + 1] = (40, 30, 25)
    return img


def scalp_jpeg(width=320, height=240, seed=0) -> bytes:
    out = io.BytesIO()
    Image.fromarray(scalp_pixels(width, height, seed)).save(out, format="JPEG", quality=85)
    return out.getvalue()


def _with_legend(rgb: np.ndarray, left, right, fmt="JPEG") -> bytes:
    """Like the engine's pictures: the image with a legend band (colour ramp) added below, as the
    workers store it (JPEG) or as they stored it before 26 Nov 2026 (PNG)."""
    h, w = rgb.shape[:2]
    band = np.full((max(12, h // 12), w, 3), 245, dtype=np.uint8)
    ramp = np.linspace(0, 1, w // 2)[None, :, None]
    band[3:-3, w // 4:w // 4 + w // 2] = (np.array(left) * (1 - ramp) + np.array(right) * ramp).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(np.vstack([rgb, band])).save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


_EXT = {"JPEG": "jpg", "PNG": "png"}


def heatmap_picture(width=320, height=240, seed=0, fmt="JPEG") -> bytes:
    """A coverage heatmap as the engine draws it: the photo blended with red (thin) to green (dense)."""
    rgb = scalp_pixels(width, height, seed).astype(np.float32)
    y, x = np.mgrid[0:height, 0:width]
    thin = np.exp(-(((x - width * 0.55) / width) ** 2 + ((y - height * 0.45) / height) ** 2) * 6)[..., None]
    colour = thin * np.array([220, 60, 50]) + (1 - thin) * np.array([60, 170, 110])
    return _with_legend((rgb * 0.55 + colour * 0.45).astype(np.uint8), (220, 60, 50), (60, 170, 110), fmt)


def change_map_picture(width=320, height=240, seed=0, fmt="JPEG") -> bytes:
    """The earlier photo dimmed, lost hair red, new hair green, as the engine's change map."""
    rgb = (scalp_pixels(width, height, seed).astype(np.float32) * 0.6).astype(np.uint8)
    rng = np.random.default_rng(seed + 99)
    for colour, n in (((215, 48, 39), 60), ((47, 158, 106), 25)):
        for _ in range(n):
            cx, cy = rng.integers(0, width), rng.integers(0, height)
            rgb[max(0, cy - 5):cy, cx:cx + 2] = colour
    return _with_legend(rgb, (215, 48, 39), (47, 158, 106), fmt)


def metrics_for(view: str, factor: float = 1.0, *, quality_ok=True, reasons=(), severity=None) -> dict:
    density = BASE_DENSITY.get(view, 160.0) * factor
    overview = view != View.TRICHOSCOPY
    return {
        "hair_count": int(density * (0.35 if not overview else 2.4)),
        "density_per_cm2": round(density, 1),
        "follicular_units": {"1": int(density * 0.2), "2": int(density * 0.17), "3+": int(density * 0.06)},
        "mean_caliber_um": round(58.0 * (0.85 + 0.15 * factor), 1),
        "caliber_histogram_um": {"<40": 18, "40-60": 35, ">=60": 47},
        "vellus_fraction": round(0.16 + 0.2 * (1 - factor), 3),
        "terminal_fraction": round(0.62 - 0.2 * (1 - factor), 3),
        "cumulative_thickness_mm_per_cm2": round(density * 0.0058, 2),
        "scalp_visibility": round(0.22 + 0.6 * (1 - factor), 3),
        "part_width_mm": round(3.1 + 6 * (1 - factor), 2) if view == View.PART_LINE else None,
        "quality": {"ok": quality_ok, "reasons": list(reasons)},
        "calibration": {"mm_per_px": 0.0062 if not overview else 0.081, "tilt_deg": 4.0,
                        "source": "given" if not overview else "card"},
        "severity": severity if overview else None,
        "model_version": MODEL_VERSION,
        "seconds": 1.8,
    }


def change(baseline: float, followup: float, unc_pct: float) -> dict:
    pct = (followup - baseline) / baseline * 100 if baseline else 0.0
    return {"baseline": baseline, "followup": followup, "change_pct": round(pct, 2),
            "uncertainty_pct": unc_pct, "significant": abs(pct) > unc_pct}


def comparison_data(base: dict, follow: dict, comparable=True, reasons=()) -> dict:
    if not comparable:
        return {"comparable": False, "reasons": list(reasons), "overlap_fraction": 0.31, "changes": {}}
    unc = {"hair_count": 4.5, "density_per_cm2": 4.5, "mean_caliber_um": 3.0, "scalp_visibility": 6.0}
    return {"comparable": True, "reasons": [], "overlap_fraction": 0.88,
            "changes": {m: change(base[m], follow[m], u) for m, u in unc.items()}}


def add_result(photo: Photo, metrics: dict, *, heatmap=True, status=AnalysisRun.Status.DONE, seed=0,
               fmt="JPEG") -> AnalysisRun:
    """One finished run with its result (call inside operator_context)."""
    now = timezone.now()
    run = AnalysisRun.objects.create(clinic_id=photo.clinic_id, photo=photo, visit_id=photo.visit_id, status=status,
                                     model_version=MODEL_VERSION, finished_at=now, started_at=now)
    if status != AnalysisRun.Status.DONE:
        return run
    result = PhotoResult(clinic_id=photo.clinic_id, run=run, photo=photo, metrics=metrics,
                         quality_ok=metrics["quality"]["ok"])
    if heatmap:
        result.heatmap.save(f"clinics/{photo.clinic_id}/results/{run.id}/heatmap.{_EXT[fmt]}",
                            ContentFile(heatmap_picture(seed=seed, fmt=fmt)), save=False)
    result.save()
    return run


def add_comparison(run: AnalysisRun, against: str, other: Photo, data: dict, change_map=True,
                   seed=0, fmt="JPEG") -> PhotoComparison:
    comparison = PhotoComparison(clinic_id=run.clinic_id, run=run, photo_id=run.photo_id, against=against,
                                 other_photo=other, data=data)
    if change_map and data["comparable"]:
        comparison.change_map.save(f"clinics/{run.clinic_id}/results/{run.id}/change-{against}.{_EXT[fmt]}",
                                   ContentFile(change_map_picture(seed=seed, fmt=fmt)), save=False)
    comparison.save()
    return comparison


def _photo_row(visit: Visit, view: str, with_file: bool, seed: int) -> Photo:
    photo = Photo(id=uuid.uuid4(), clinic_id=visit.clinic_id, visit=visit, view=view, content_type="image/jpeg",
                  site_label="vertex, midline" if view == View.TRICHOSCOPY else "", width=320, height=240,
                  sha256=hashlib.sha256(f"{visit.id}{view}".encode()).hexdigest())
    if with_file:
        photo.file.save("upload", ContentFile(scalp_jpeg(seed=seed)), save=False)
    else:
        photo.file.name = f"clinics/{visit.clinic_id}/photos/{photo.id}.jpg"
    photo.save()
    return photo


def build_history(patient: Patient, *, visits: int = 4, views=DEFAULT_VIEWS, with_files=False, months_apart=3,
                  trend=(1.0, 0.93, 0.89, 0.95, 0.98), grades=True, notes=True, treatments=True,
                  not_comparable_last=False) -> list[Visit]:
    """A patient with `visits` analysed visits, comparisons against baseline and previous, grades,
    notes and a treatment started after the second visit. The last visit's pictures are JPEGs, the
    earlier visits' PNGs, as results stored before and after 26 Nov 2026 are."""
    start = datetime.date.today() - datetime.timedelta(days=30 * months_apart * (visits - 1))
    out = []
    with operator_context():
        first_photos, prev_photos, prev_metrics, first_metrics = {}, {}, {}, {}
        for i in range(visits):
            visit = services.visit_create(patient=patient,
                                          visit_date=start + datetime.timedelta(days=30 * months_apart * i))
            factor = trend[i % len(trend)] if i < len(trend) else trend[-1] + 0.002 * (i - len(trend))
            for j, view in enumerate(views):
                photo = _photo_row(visit, view, with_files, seed=i * 10 + j)
                flagged = view == View.TEMPLE_LEFT and i == 1
                severity = {"scale": "norwood", "value": "III vertex" if factor < 0.95 else "III",
                            "stage_index": 4, "confidence": 0.78} if view == View.CROWN else None
                m = metrics_for(view, factor, quality_ok=not flagged, severity=severity,
                                reasons=["Out of focus: sharpness 38% of this view's baseline; retake"] if flagged
                                else ())
                fmt = "JPEG" if i == visits - 1 else "PNG"
                run = add_result(photo, m, heatmap=with_files, seed=i * 10 + j, fmt=fmt)
                if i > 0:
                    last = not_comparable_last and i == visits - 1 and view == View.HAIRLINE
                    reasons = ["Camera tilted 14° more than at baseline", "Hair wet"] if last else ()
                    add_comparison(run, "baseline", first_photos[view],
                                   comparison_data(first_metrics[view], m, not last, reasons), change_map=with_files,
                                   seed=j, fmt=fmt)
                    add_comparison(run, "previous", prev_photos[view],
                                   comparison_data(prev_metrics[view], m, not last, reasons), change_map=with_files,
                                   seed=(i - 1) * 10 + j, fmt=fmt)
                else:
                    first_photos[view], first_metrics[view] = photo, m
                prev_photos[view], prev_metrics[view] = photo, m
            if grades:
                services.grade_set(visit=visit, scale=SeverityGrade.Scale.NORWOOD, value="III", by=None,
                                   source=SeverityGrade.Source.AI, confidence=0.78)
            if notes and i % 2 == 0:
                services.note_create(visit=visit, author=None, text=f"Visit {i + 1}: diffuse thinning at the vertex; "
                                     "no scarring, no inflammation. Continue current plan and review in 3 months.")
            out.append(visit)
        if treatments and visits > 1:
            services.treatment_create(patient=patient, name="Minoxidil 5% foam", dose="1 ml twice daily",
                                      start=out[1].date + datetime.timedelta(days=7))
    return out
