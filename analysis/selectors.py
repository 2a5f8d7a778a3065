"""Reads of analysis runs and results, always within the caller's clinic."""

from analysis.models import AnalysisRun, PhotoResult
from clinic.tenancy import get_object_for_clinic
from patients import selectors as patient_selectors
from patients.models import Photo, View, Visit


def get_run(request, run_id) -> AnalysisRun:
    """The one accessor for runs: those of photos the reader may see, else 404."""
    runs = AnalysisRun.objects.filter(photo__in=patient_selectors.visible_photos(request))
    return get_object_for_clinic(runs.select_related("photo", "result"), request.clinic, id=run_id)


def latest_runs(photos) -> dict:
    """photo id -> its latest run (any status), in one query for the whole list."""
    photo_ids = [p.id for p in photos]
    runs = (AnalysisRun.objects.filter(photo_id__in=photo_ids).select_related("result")
            .order_by("photo_id", "-queued_at"))
    latest = {}
    for run in runs:
        latest.setdefault(run.photo_id, run)
    return latest


def current_result(photo):
    """The result of the photo's latest done run (what pages and reports show), or None."""
    run = (AnalysisRun.objects.filter(photo=photo, status=AnalysisRun.Status.DONE)
           .select_related("result").order_by("-finished_at").first())
    return getattr(run, "result", None) if run else None


def photo_status(photo, run) -> dict:
    """One photo's analysis state as the status endpoint and the badges show it."""
    base = {"photo": str(photo.id), "view": photo.get_view_display(), "site_label": photo.site_label}
    if run is None:
        return base | {"status": "none", "label": "Not analysed"}
    data = base | {
        "run": str(run.id), "status": run.status, "label": run.get_status_display(),
        "attempts": run.attempts, "model_version": run.model_version,
        "queued_at": run.queued_at.isoformat(), "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
    if run.status == AnalysisRun.Status.FAILED:
        data.update(error_kind=run.error_kind, error=run.error_reason or run.get_error_kind_display(),
                    can_retry=True)
    elif run.status == AnalysisRun.Status.QUEUED and run.error_reason:
        data["note"] = run.error_reason  # "Retrying after: ..." while a transient error is retried
    if run.status == AnalysisRun.Status.DONE and hasattr(run, "result"):
        data["quality_ok"] = run.result.quality_ok
    return data


def visit_status(visit) -> dict:
    photos = list(Photo.objects.filter(visit=visit).order_by("view", "uploaded_at"))
    runs = latest_runs(photos)
    items = [photo_status(p, runs.get(p.id)) for p in photos]
    counts = {s: sum(1 for i in items if i["status"] == s) for s in ("queued", "running", "done", "failed", "none")}
    finished = counts["done"] + counts["failed"]
    return {"visit": str(visit.id), "photos": items, "counts": counts, "total": len(items),
            "finished": finished, "all_finished": finished + counts["none"] == len(items)}


# ---------------------------------------------------------------- what a photo is compared against


def _visit_order(visit):
    return (visit.date, visit.created_at)


def _same_view_photo(visit, photo):
    candidates = Photo.objects.filter(visit=visit, view=photo.view, excluded_from_trend=False)
    if photo.view == View.TRICHOSCOPY:
        candidates = candidates.filter(site_label=photo.site_label)
    return candidates.order_by("-uploaded_at").first()


def comparison_targets(photo) -> dict:
    """{"baseline": Photo, "previous": Photo}: the same view (trichoscopy: the same site) at the
    patient's baseline visit (first visit when unset) and at the latest earlier visit."""
    visit = photo.visit
    patient = visit.patient
    visits = sorted(Visit.objects.filter(patient=patient), key=_visit_order)
    baseline_visit = patient.baseline_visit or (visits[0] if visits else None)
    earlier = [v for v in visits if _visit_order(v) < _visit_order(visit)]
    targets = {}
    if baseline_visit is not None and baseline_visit.id != visit.id:
        other = _same_view_photo(baseline_visit, photo)
        if other is not None:
            targets["baseline"] = other
    for previous in reversed(earlier):
        other = _same_view_photo(previous, photo)
        if other is not None:
            targets["previous"] = other
            break
    return targets


def stored_coverage(photo_ids, model_version: str) -> dict:
    """photo id -> the coverage map file of its latest done run *by this model version* (other
    versions' maps must not stand in for this one's)."""
    results = (PhotoResult.objects.filter(photo_id__in=photo_ids, run__status=AnalysisRun.Status.DONE,
                                          run__model_version=model_version)
               .exclude(mask="").order_by("photo_id", "-run__finished_at"))
    out = {}
    for result in results:
        out.setdefault(result.photo_id, result.mask)
    return out
