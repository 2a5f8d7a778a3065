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


def heatmap_png(width=96, height=72, seed=0) -> bytes:
    """A smooth red-to-green field, like the engine's density overlay."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    field = np.exp(-(((x - cx) / width) ** 2 + ((y - cy) / height) ** 2) * 5)
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[..., 0] = (255 * field).astype(np.uint8)
    rgba[..., 1] = (200 * (1 - field)).astype(np.uint8)
    rgba[..., 2] = 60
    rgba[..., 3] = 150
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG")
    return out.getvalue()


def scalp_jpeg(width=320, height=240, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), (196, 160, 140), dtype=np.uint8)
    for _ in range(400):
        x, y = rng.integers(0, width), rng.integers(0, height)
        img[max(0, y - 6):y, x:x + 1] = (40, 30, 25)
    out = io.BytesIO()
    Image.fromarray(img).save(out, format="JPEG", quality=85)
    return out.getvalue()


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


def add_result(photo: Photo, metrics: dict, *, heatmap=True, status=AnalysisRun.Status.DONE) -> AnalysisRun:
    """One finished run with its result (call inside operator_context)."""
    now = timezone.now()
    run = AnalysisRun.objects.create(clinic_id=photo.clinic_id, photo=photo, visit_id=photo.visit_id, status=status,
                                     model_version=MODEL_VERSION, finished_at=now, started_at=now)
    if status != AnalysisRun.Status.DONE:
        return run
    result = PhotoResult(clinic_id=photo.clinic_id, run=run, photo=photo, metrics=metrics,
                         quality_ok=metrics["quality"]["ok"])
    if heatmap:
        result.heatmap.save(f"clinics/{photo.clinic_id}/heatmaps/{run.id}.png", ContentFile(heatmap_png()), save=False)
    result.save()
    return run


def add_comparison(run: AnalysisRun, against: str, other: Photo, data: dict, change_map=True) -> PhotoComparison:
    comparison = PhotoComparison(clinic_id=run.clinic_id, run=run, photo_id=run.photo_id, against=against,
                                 other_photo=other, data=data)
    if change_map and data["comparable"]:
        comparison.change_map.save(f"clinics/{run.clinic_id}/changes/{run.id}-{against}.png",
                                   ContentFile(heatmap_png(seed=3)), save=False)
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
    notes and a treatment started after the second visit."""
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
                run = add_result(photo, m, heatmap=with_files)
                if i > 0:
                    last = not_comparable_last and i == visits - 1 and view == View.HAIRLINE
                    reasons = ["Camera tilted 14° more than at baseline", "Hair wet"] if last else ()
                    add_comparison(run, "baseline", first_photos[view],
                                   comparison_data(first_metrics[view], m, not last, reasons), change_map=with_files)
                    add_comparison(run, "previous", prev_photos[view],
                                   comparison_data(prev_metrics[view], m, not last, reasons), change_map=with_files)
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
