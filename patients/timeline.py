"""Reads for the clinician workspace: a patient's visits with their saved analysis, in a fixed
number of queries whatever the number of visits and photos.

Everything here reads what the workers saved (runs, results, comparisons); nothing is measured
on page load. Accessors for rows the workspace names in URLs (runs, notes, treatments) live here
too and answer 404 alike for "not yours" and "missing", through the patient/photo selectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.db.models import Count

from analysis.models import AnalysisRun, PhotoComparison
from patients.models import ClinicalNote, Patient, Photo, SeverityGrade, Treatment, View, Visit

# The five trend metrics, in the order clinicians read them, with how to show each.
TREND_METRICS = [
    # key, label, unit, decimals, higher_is_better
    ("density_per_cm2", "Density", "hairs/cm²", 0, True),
    ("scalp_visibility", "Scalp visibility", "%", 1, False),
    ("mean_caliber_um", "Mean caliber", "µm", 1, True),
    ("vellus_fraction", "Vellus fraction", "%", 1, False),
    ("part_width_mm", "Part width", "mm", 1, False),
]
# Metrics that the engine compares with an uncertainty (PhotoComparison.data["changes"]).
COMPARED_METRICS = ["hair_count", "density_per_cm2", "mean_caliber_um", "scalp_visibility"]
PERCENT_METRICS = {"scalp_visibility", "vellus_fraction", "terminal_fraction"}
VIEW_ORDER = {value: index for index, value in enumerate(View.values)}
SQ_IN_PER_SQ_CM = 6.4516


@dataclass
class PhotoEntry:
    photo: Photo
    latest_run: AnalysisRun | None = None  # whatever state; shows "queued"/"failed" next to the result
    current_run: AnalysisRun | None = None  # latest run with status done: the result on screen
    comparisons: dict[str, PhotoComparison] = field(default_factory=dict)

    @property
    def result(self):
        return self.current_run.result if self.current_run else None

    @property
    def metrics(self) -> dict:
        return self.result.metrics if self.result else {}

    @property
    def pending(self) -> bool:
        return self.latest_run is not None and self.latest_run is not self.current_run

    @property
    def quality(self) -> dict:
        return self.metrics.get("quality") or {}

    @property
    def calibration(self) -> dict:
        return self.metrics.get("calibration") or {}

    @property
    def severity(self) -> dict | None:
        return self.metrics.get("severity")

    @property
    def label(self) -> str:
        label = self.photo.get_view_display()
        return f"{label} · {self.photo.site_label}" if self.photo.site_label else label

    @property
    def series_key(self) -> str:
        # Trichoscopy fields are only comparable at the same marked site.
        if self.photo.view == View.TRICHOSCOPY:
            return f"trichoscopy:{self.photo.site_label.strip().lower()}"
        return self.photo.view

    @property
    def stale_baseline(self) -> bool:
        """Measured against an earlier baseline: the clinician has since moved the baseline."""
        comparison = self.comparisons.get("baseline")
        return comparison is not None and getattr(comparison, "stale", False)

    def change(self, against: str, metric: str) -> dict | None:
        comparison = self.comparisons.get(against)
        if comparison is None or not comparison.data.get("comparable") or getattr(comparison, "stale", False):
            return None
        change = (comparison.data.get("changes") or {}).get(metric)
        # The engine reports a metric it could not measure (no scale: no density) with empty values.
        return change if change and change.get("change_pct") is not None else None

    @property
    def key_metric(self) -> str | None:
        """The measure a thumbnail and the verdict use: density, or scalp visibility when the photo
        has no scale (density needs one)."""
        for metric in ("density_per_cm2", "scalp_visibility"):
            if self.metrics.get(metric) is not None:
                return metric
        return None

    @property
    def key_better_up(self) -> bool:
        return self.key_metric != "scalp_visibility"

    @property
    def key_change(self) -> dict | None:
        return self.change("baseline", self.key_metric) if self.key_metric else None


@dataclass
class VisitEntry:
    visit: Visit
    photos: list[PhotoEntry] = field(default_factory=list)
    grades: list[SeverityGrade] = field(default_factory=list)
    notes: list[ClinicalNote] = field(default_factory=list)
    is_baseline: bool = False
    index: int = 0
    treatments: list[Treatment] = field(default_factory=list)  # on treatment at this visit

    @property
    def clinician_grade(self) -> SeverityGrade | None:
        graded = [g for g in self.grades if g.source == SeverityGrade.Source.CLINICIAN]
        return graded[-1] if graded else None

    @property
    def ai_grade(self) -> dict | None:
        """The engine's suggestion with the highest confidence among the visit's overview photos."""
        suggestions = [p.severity for p in self.photos if p.severity and not p.photo.excluded_from_trend]
        if not suggestions:
            stored = [g for g in self.grades if g.source == SeverityGrade.Source.AI]
            if not stored:
                return None
            g = stored[-1]
            return {"scale": g.scale, "value": g.value, "confidence": g.confidence}
        return max(suggestions, key=lambda s: s.get("confidence") or 0)

    @property
    def flagged(self) -> list[PhotoEntry]:
        return [p for p in self.photos if p.result and not p.result.quality_ok]

    @property
    def significant_changes(self) -> list[tuple[PhotoEntry, str, dict]]:
        found = []
        for entry in self.photos:
            if entry.photo.excluded_from_trend:
                continue
            for metric in COMPARED_METRICS:
                change = entry.change("baseline", metric)
                if change and change.get("significant"):
                    found.append((entry, metric, change))
        return found


@dataclass
class Timeline:
    patient: Patient
    visits: list[VisitEntry]
    treatments: list[Treatment]
    baseline: VisitEntry | None

    def visit(self, visit_id) -> VisitEntry | None:
        return next((v for v in self.visits if v.visit.id == visit_id), None)

    def previous(self, entry: VisitEntry) -> VisitEntry | None:
        return self.visits[entry.index - 1] if entry.index > 0 else None


def load_timeline(patient: Patient, *, visit_ids=None) -> Timeline:
    """Load a patient's visits (all, or only `visit_ids` plus the baseline) in eight queries."""
    visits = list(Visit.objects.filter(clinic_id=patient.clinic_id, patient=patient).order_by("date", "created_at"))
    baseline_id = patient.baseline_visit_id or (visits[0].id if visits else None)
    entries = {v.id: VisitEntry(visit=v, is_baseline=v.id == baseline_id, index=i) for i, v in enumerate(visits)}
    wanted = set(entries) if visit_ids is None else {*visit_ids, baseline_id}
    scope = {"clinic_id": patient.clinic_id, "visit_id__in": wanted}

    photos = {p.id: PhotoEntry(photo=p) for p in Photo.objects.filter(**scope).defer("sha256")}
    runs = AnalysisRun.objects.filter(**scope).select_related("result").defer(
        "engine_settings", "timings").order_by("queued_at")
    for run in runs:
        entry = photos.get(run.photo_id)
        if entry is None:
            continue
        entry.latest_run = run
        if run.status == AnalysisRun.Status.DONE and hasattr(run, "result"):
            entry.current_run = run
    current = {e.current_run.id: e for e in photos.values() if e.current_run}
    for comparison in PhotoComparison.objects.filter(clinic_id=patient.clinic_id, run_id__in=list(current)):
        other = photos.get(comparison.other_photo_id)
        comparison.stale = comparison.against == "baseline" and (other is None or other.photo.visit_id != baseline_id)
        current[comparison.run_id].comparisons[comparison.against] = comparison

    for entry in sorted(photos.values(), key=lambda e: (VIEW_ORDER.get(e.photo.view, 99), e.photo.site_label)):
        entries[entry.photo.visit_id].photos.append(entry)
    for grade in SeverityGrade.objects.filter(**scope).select_related("graded_by"):
        entries[grade.visit_id].grades.append(grade)
    notes = ClinicalNote.objects.filter(**scope).select_related("author").annotate(revision_count=Count("revisions"))
    for note in notes:
        entries[note.visit_id].notes.append(note)
    treatments = list(
        Treatment.objects.filter(clinic_id=patient.clinic_id, patient=patient).prefetch_related("revisions")
    )
    for entry in entries.values():
        day = entry.visit.date
        entry.treatments = [t for t in treatments if t.start <= day and (t.stop is None or t.stop >= day)]
    return Timeline(patient=patient, visits=list(entries.values()), treatments=treatments,
                    baseline=entries.get(baseline_id))


def photo_entry(timeline: Timeline, visit_id, series_key: str) -> PhotoEntry | None:
    entry = timeline.visit(visit_id)
    if entry is None:
        return None
    return next((p for p in entry.photos if p.series_key == series_key), None)


def cache_key(patient: Patient, clinic, can_edit: bool) -> str:
    """The key the rendered timeline is cached under (see workspace.patient_timeline).

    Everything the body shows hangs off the patient, whose timeline_version the database raises in
    the same transaction as any write to the patient, their visits, photos, runs, results,
    comparisons, grades, notes or treatments (triggers, patients migration 0002), whoever writes:
    web, workers or a data fix. So the key read with the patient row costs no query, and a change
    shows at once in every process without anyone invalidating anything. The clinic's slug (links)
    and units, and whether the reader may edit, change the page too.
    """
    return f"timeline:{patient.id}:{patient.timeline_version}:{clinic.id}:{clinic.slug}:{clinic.units}:{int(can_edit)}"


# Display --------------------------------------------------------------------------------------

def to_display(metric: str, value, units: str = "metric"):
    """Convert a stored metric to what the clinic reads (percent for fractions, imperial if set)."""
    if value is None:
        return None
    if metric in PERCENT_METRICS:
        return value * 100
    if units == "imperial" and metric == "density_per_cm2":
        return value * SQ_IN_PER_SQ_CM
    if units == "imperial" and metric == "part_width_mm":
        return value / 25.4
    return value


def unit_label(metric: str, units: str = "metric") -> str:
    for key, _label, unit, _decimals, _better in TREND_METRICS:
        if key == metric:
            if units == "imperial" and metric == "density_per_cm2":
                return "hairs/in²"
            if units == "imperial" and metric == "part_width_mm":
                return "in"
            return unit
    return {"hair_count": "hairs"}.get(metric, "")


def uncertainty(entry: PhotoEntry, metric: str) -> float | None:
    """Absolute uncertainty of a stored value, in the metric's stored unit.

    The engine states the uncertainty of each compared metric in percent of the change; for a point
    on the trend we use that percent of the value. Vellus fraction is a proportion of counted hairs
    (binomial, 95%); part width is good to about two pixels at the photo's scale.
    """
    value = entry.metrics.get(metric)
    if value is None:
        return None
    for against in ("baseline", "previous"):
        change = entry.change(against, metric)
        if change and change.get("uncertainty_pct") is not None:
            # The change's uncertainty combines two measurements; one point carries about 1/√2 of it.
            return abs(value) * change["uncertainty_pct"] / 100 / math.sqrt(2)
    if metric == "vellus_fraction":
        n = entry.metrics.get("hair_count") or 0
        return 1.96 * math.sqrt(value * (1 - value) / n) if n else None
    if metric == "part_width_mm":
        scale = entry.photo.mm_per_px_override or entry.calibration.get("mm_per_px")
        return 2 * scale if scale else None
    return None


def trend_series(timeline: Timeline, units: str = "metric") -> dict:
    """JSON for the trend charts: one series per view (and trichoscopy site) per metric. A point is
    {date, v: value, e: ± uncertainty if known, x: true if excluded, b: true at the baseline}."""
    series: dict[str, dict] = {}
    for visit in timeline.visits:
        for entry in visit.photos:
            if not entry.result:
                continue
            s = series.setdefault(entry.series_key, {"label": entry.label, "points": {m[0]: [] for m in TREND_METRICS}})
            for metric, *_ in TREND_METRICS:
                value = entry.metrics.get(metric)
                if value is None:
                    continue
                err = uncertainty(entry, metric)
                # ~1250 points for 50 visits: only what the charts read, and flags only when set.
                point = {"date": visit.visit.date.isoformat(), "v": round(to_display(metric, value, units), 3)}
                if err is not None:
                    point["e"] = round(to_display(metric, err, units), 3)
                if entry.photo.excluded_from_trend:
                    point["x"] = True
                if visit.is_baseline:
                    point["b"] = True
                s["points"][metric].append(point)
    return {
        "metrics": [{"key": k, "label": label, "unit": unit_label(k, units), "decimals": d,
                     "better": "up" if up else "down"} for k, label, _u, d, up in TREND_METRICS],
        "series": series,
        "treatments": [{"name": str(t), "start": t.start.isoformat(), "stop": t.stop.isoformat() if t.stop else None}
                       for t in timeline.treatments],
    }


def headline(timeline: Timeline, entry: VisitEntry | None = None) -> list[dict]:
    """Per view, a visit's (default: the latest) change in density against baseline: better, worse or
    within noise."""
    if not timeline.visits:
        return []
    latest = entry or timeline.visits[-1]
    lines = []
    for entry in latest.photos:
        if entry.photo.excluded_from_trend or not entry.result:
            continue
        comparison = entry.comparisons.get("baseline")
        if comparison is None or latest.is_baseline:
            continue
        if entry.stale_baseline:
            lines.append({"entry": entry, "verdict": "pending", "text": "being re-measured",
                          "reasons": ["measured against the earlier baseline; re-analysis requested"]})
            continue
        metric, change = entry.key_metric, entry.key_change
        if change is None:
            reasons = comparison.data.get("reasons") or ([] if comparison.data.get("comparable") else
                                                         ["the photos could not be matched"])
            lines.append({"entry": entry, "verdict": "not-comparable", "text": "not comparable",
                          "reasons": reasons or ["no measure could be compared"]})
            continue
        pct = change.get("change_pct") or 0
        better = pct > 0 if metric == "density_per_cm2" else pct < 0
        verdict = "stable" if not change.get("significant") else ("better" if better else "worse")
        lines.append({"entry": entry, "verdict": verdict, "change": change, "metric": metric,
                      "metric_label": "density" if metric == "density_per_cm2" else "scalp visibility"})
    return lines


def headline_summary(lines: list[dict]) -> str:
    """One sentence for the top of the timeline: the answer a clinician looks for first."""
    counts = {v: sum(1 for line in lines if line["verdict"] == v) for v in ("worse", "better", "stable")}
    compared = sum(counts.values())
    if not compared:
        return "No view of the latest visit could be compared with the baseline."
    if counts["worse"] == compared:
        return f"Worse than baseline, beyond measurement noise, in {_views(compared)}."
    if counts["better"] == compared:
        return f"Better than baseline, beyond measurement noise, in {_views(compared)}."
    if counts["stable"] == compared:
        return f"No change beyond measurement noise in {_views(compared)}."
    parts = [f"{label} in {counts[key]}" for key, label in (("worse", "worse"), ("better", "better"),
                                                            ("stable", "within noise")) if counts[key]]
    return "Since baseline: " + ", ".join(parts) + f" of {_views(compared)}."


def _views(n: int) -> str:
    return f"{n} view" + ("" if n == 1 else "s")
