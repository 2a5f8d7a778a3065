"""The clinician workspace: timeline, visit page, compare view, the writes a clinician makes
there, and the files those pages show. Views are thin: reads through patients.timeline and
patients.selectors, writes through patients.services and analysis.services."""

import json
import mimetypes

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from analysis import selectors as analysis_selectors
from clinic.access import require_care_team, require_role
from clinic.models import Role
from patients import selectors, services, thumbs, timeline
from patients.models import AuditEvent, SeverityGrade
from patients.workspace_forms import CorrectionForm, GradeForm, NoteForm, TreatmentForm, default_scale

CLINICAL_ROLES = {Role.ADMIN, Role.CLINICIAN}
TIMELINE_CACHE_SECONDS = 600


# Pages ------------------------------------------------------------------------------------------

CSRF_PLACEHOLDER = "__csrf_token_placeholder__"
BODY_PLACEHOLDER = "__timeline_body_placeholder__"


@login_required
def patient_timeline(request, clinic_slug, patient_id):
    patient = selectors.get_patient(request, patient_id)
    require_care_team(request)
    services.audit_record(request=request, patient=patient, action=AuditEvent.Action.VIEW, obj=patient)
    can_edit = request.membership.role in CLINICAL_ROLES
    key = timeline.cache_key(patient, request.clinic, can_edit)
    cached = cache.get(key)
    if cached is None:
        cached = _timeline_body(request, patient, can_edit)
        cache.set(key, cached, TIMELINE_CACHE_SECONDS)
    pieces, visit_count, latest_visit_id = cached
    response = render(request, "patients/patient_detail.html", {
        "patient": patient, "visit_count": visit_count, "latest_visit_id": latest_visit_id,
        "body": mark_safe(BODY_PLACEHOLDER),
    })
    # The body (~300 kB) is spliced in as UTF-8 bytes: through the template engine it was copied at
    # every block level and encoded again on each view, a tenth of a cached view's CPU.
    head, tail = response.content.split(BODY_PLACEHOLDER.encode(), 1)
    response.content = b"".join([head, get_token(request).encode().join(pieces), tail])
    return response


def _timeline_body(request, patient, can_edit) -> tuple[list[bytes], int, str | None]:
    """The heavy part of the timeline, free of anything specific to the request, so that it can be
    cached for every clinician of the clinic: UTF-8 pieces to be joined with the request's CSRF token,
    with the number of visits and the latest visit, which the page's header needs."""
    data = timeline.load_timeline(patient)
    lines = timeline.headline(data)
    body = render_to_string("patients/workspace/_timeline_body.html", {
        "clinic": request.clinic, "patient": patient, "timeline": data, "latest": data.visits[-1] if data.visits
        else None, "visits_newest_first": data.visits[::-1], "headline": lines,
        "headline_summary": timeline.headline_summary(lines),
        "trend_json": timeline.trend_series(data, request.clinic.units), "treatment_form": TreatmentForm(),
        "can_edit": can_edit, "csrf_placeholder": CSRF_PLACEHOLDER,
    })
    latest = str(data.visits[-1].visit.id) if data.visits else None
    return body.encode().split(CSRF_PLACEHOLDER.encode()), len(data.visits), latest


@login_required
def visit_page(request, clinic_slug, visit_id):
    visit = selectors.get_visit(request, visit_id)
    require_care_team(request)
    services.audit_record(request=request, patient=visit.patient, action=AuditEvent.Action.VIEW, obj=visit)
    data = timeline.load_timeline(visit.patient, visit_ids={visit.id})
    entry = data.visit(visit.id)
    current = entry.clinician_grade
    initial = {"grade": f"{current.scale}:{current.value}"} if current else _ai_initial(entry, visit.patient, request)
    return render(request, "patients/visit_detail.html", {
        "visit": visit, "patient": visit.patient, "entry": entry, "timeline": data,
        "previous": data.previous(entry), "rows": _metric_rows(entry, request.clinic.units),
        "grade_form": GradeForm(initial=initial), "note_form": NoteForm(), "treatment_form": TreatmentForm(),
        "can_edit": request.membership.role in CLINICAL_ROLES,
        "active_treatments": [t for t in data.treatments
                              if t.start <= visit.date and (not t.stop or t.stop >= visit.date)],
    })


def _ai_initial(entry, patient, request):
    ai = entry.ai_grade
    if ai:
        return {"grade": f"{ai['scale']}:{ai['value']}"}
    return {"grade": f"{default_scale(patient, request.clinic)}:"}


def _metric_rows(entry, units):
    """One table per photo: value, change against baseline and previous, with significance."""
    rows = []
    for photo in entry.photos:
        lines = []
        for metric, label, _unit, decimals, better_up in timeline.TREND_METRICS + [
                ("hair_count", "Hair count", "", 0, True), ("terminal_fraction", "Terminal fraction", "%", 1, True),
                ("cumulative_thickness_mm_per_cm2", "Cumulative thickness", "mm/cm²", 2, True)]:
            value = photo.metrics.get(metric)
            if value is None:
                continue
            lines.append({
                "label": label, "unit": timeline.unit_label(metric, units) or _unit,
                "value": timeline.to_display(metric, value, units), "decimals": decimals,
                "baseline": photo.change("baseline", metric), "previous": photo.change("previous", metric),
                "better_up": better_up,
            })
        rows.append({"entry": photo, "lines": lines})
    return rows


@login_required
def compare(request, clinic_slug, patient_id):
    patient = selectors.get_patient(request, patient_id)
    require_care_team(request)
    data = timeline.load_timeline(patient)
    if len(data.visits) < 2:
        messages.info(request, "Comparing needs two visits.")
        return redirect("patient_detail", clinic_slug=clinic_slug, patient_id=patient.id)
    by_id = {str(v.visit.id): v for v in data.visits}
    first = by_id.get(request.GET.get("a")) or data.baseline or data.visits[0]
    second = by_id.get(request.GET.get("b")) or data.visits[-1]
    if first.visit.date > second.visit.date:
        first, second = second, first
    keys = _series_keys(first, second)
    key = request.GET.get("view") if request.GET.get("view") in keys else (keys[0] if keys else None)
    before = next((p for p in first.photos if p.series_key == key), None)
    after = next((p for p in second.photos if p.series_key == key), None)
    comparison = _pair_comparison(before, after)
    return render(request, "patients/compare.html", {
        "patient": patient, "timeline": data, "first": first, "second": second, "keys": keys, "key": key,
        "before": before, "after": after, "comparison": comparison,
        "homography": json.dumps(comparison.data.get("homography")) if comparison else "null",
        "pair_rows": _pair_rows(comparison, request.clinic.units),
        "labels": {p.series_key: p.label for v in (first, second) for p in v.photos},
    })


COMPARED_LABELS = [("hair_count", "Hair count", True, 0), ("density_per_cm2", "Density", True, 0),
                   ("mean_caliber_um", "Mean caliber", True, 1), ("scalp_visibility", "Scalp visibility", False, 1)]


def _pair_rows(comparison, units):
    changes = (comparison.data.get("changes") or {}) if comparison else {}
    return [{"label": label, "change": changes[key], "better_up": up, "decimals": decimals,
             "unit": timeline.unit_label(key, units),
             "before": timeline.to_display(key, changes[key].get("baseline"), units),
             "after": timeline.to_display(key, changes[key].get("followup"), units)}
            for key, label, up, decimals in COMPARED_LABELS
            if (changes.get(key) or {}).get("change_pct") is not None]


def _series_keys(first, second):
    a = [p.series_key for p in first.photos]
    b = {p.series_key for p in second.photos}
    return [k for k in a if k in b]


def _pair_comparison(before, after):
    """The saved comparison of exactly this pair (follow-up registered onto the earlier photo), if any."""
    if before is None or after is None:
        return None
    for comparison in after.comparisons.values():
        if comparison.other_photo_id == before.photo.id:
            return comparison
    return None


# Writes -------------------------------------------------------------------------------------------

def _back(request, fallback):
    target = request.POST.get("next", "")
    return redirect(target if target.startswith(f"/c/{request.clinic.slug}/") else fallback)


@login_required
@require_POST
def baseline_set(request, clinic_slug, patient_id):
    patient = selectors.get_patient(request, patient_id)
    require_role(request, CLINICAL_ROLES)
    visit = selectors.get_visit(request, request.POST.get("visit")) if request.POST.get("visit") else None
    services.patient_baseline_set(patient=patient, visit=visit)
    # Changes are measured by the engine against the baseline photo: re-measure every other visit.
    from analysis.services import analysis_reanalyze

    new_baseline = visit or patient.visits.order_by("date", "created_at").first()
    photos = selectors.visible_photos(request).filter(visit__patient=patient).exclude(visit=new_baseline)
    runs = analysis_reanalyze(photos=list(photos), reason="baseline changed")
    messages.success(request, f"Baseline set to {new_baseline.date:%d %b %Y}; {len(runs)} photos are being "
                              "re-measured against it.")
    return redirect("patient_detail", clinic_slug=clinic_slug, patient_id=patient.id)


@login_required
@require_POST
def grade_set(request, clinic_slug, visit_id):
    visit = selectors.get_visit(request, visit_id)
    require_role(request, CLINICAL_ROLES)
    form = GradeForm(request.POST)
    if form.is_valid():
        services.grade_set(visit=visit, scale=form.cleaned_data["scale"], value=form.cleaned_data["value"],
                           by=request.user, source=SeverityGrade.Source.CLINICIAN)
        messages.success(request, "Grade recorded.")
    else:
        messages.error(request, "Choose a grade from the list.")
    return redirect(reverse("visit_detail", args=[clinic_slug, visit.id]) + "#grading")


@login_required
@require_POST
def note_add(request, clinic_slug, visit_id):
    visit = selectors.get_visit(request, visit_id)
    require_role(request, CLINICAL_ROLES)
    form = NoteForm(request.POST)
    if form.is_valid():
        services.note_create(visit=visit, author=request.user, text=form.cleaned_data["text"])
        messages.success(request, "Note added.")
    else:
        messages.error(request, "A note cannot be empty.")
    return redirect(reverse("visit_detail", args=[clinic_slug, visit.id]) + "#notes")


@login_required
@require_POST
def note_edit(request, clinic_slug, note_id):
    note = selectors.get_note(request, note_id)
    require_role(request, CLINICAL_ROLES)
    form = NoteForm(request.POST)
    if form.is_valid():
        services.note_edit(note=note, editor=request.user, text=form.cleaned_data["text"])
        messages.success(request, "Note updated; the earlier text is kept in its history.")
    else:
        messages.error(request, "A note cannot be empty.")
    return redirect(reverse("visit_detail", args=[clinic_slug, note.visit_id]) + "#notes")


@login_required
@require_POST
def treatment_add(request, clinic_slug, patient_id):
    patient = selectors.get_patient(request, patient_id)
    require_role(request, CLINICAL_ROLES)
    form = TreatmentForm(request.POST)
    if form.is_valid():
        services.treatment_create(patient=patient, by=request.user, **form.cleaned_data)
        messages.success(request, f"{form.cleaned_data['name']} recorded.")
    else:
        messages.error(request, "Treatment not saved: " + _errors(form))
    return _back(request, reverse("patient_detail", args=[clinic_slug, patient.id]))


@login_required
@require_POST
def treatment_edit(request, clinic_slug, treatment_id):
    treatment = selectors.get_treatment(request, treatment_id)
    require_role(request, CLINICAL_ROLES)
    form = TreatmentForm(request.POST)
    if form.is_valid():
        services.treatment_update(treatment=treatment, by=request.user, **form.cleaned_data)
        messages.success(request, f"{treatment.name} updated.")
    else:
        messages.error(request, "Treatment not saved: " + _errors(form))
    return _back(request, reverse("patient_detail", args=[clinic_slug, treatment.patient_id]))


@login_required
@require_POST
def photo_correct(request, clinic_slug, photo_id):
    photo = selectors.get_photo(request, photo_id)
    require_role(request, CLINICAL_ROLES)
    form = CorrectionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Correction not saved: " + _errors(form))
    else:
        _apply_correction(request, photo, form.cleaned_data)
    return redirect(reverse("visit_detail", args=[clinic_slug, photo.visit_id]) + f"#photo-{photo.id}")


def _errors(form) -> str:
    return "; ".join(error for errors in form.errors.values() for error in errors)


def _apply_correction(request, photo, data):
    from analysis.services import analysis_request

    action = data["action"]
    if action in ("exclude", "include"):
        services.photo_trend_exclusion_set(photo=photo, excluded=action == "exclude")
        verb = "excluded from" if action == "exclude" else "included in"
        messages.success(request, f"{photo.get_view_display()} photo {verb} the trend.")
    elif action in ("scale", "clear_scale"):
        services.photo_scale_set(photo=photo, mm_per_px=data["mm_per_px"] if action == "scale" else None,
                                 by=request.user)
        messages.success(request, "Scale saved; re-analysis requested.")
    else:
        analysis_request(photo=photo, reason="clinician")
        messages.success(request, "Re-analysis requested; the current result stays until the new run is done.")


# Files ---------------------------------------------------------------------------------------------

def _picture(file_field):
    """A stored heatmap or change map: JPEG since 26 Nov 2026, PNG before (kept as it was stored)."""
    if not file_field:
        raise Http404("Not found")
    kind, _ = mimetypes.guess_type(file_field.name)
    response = FileResponse(file_field.open("rb"), content_type=kind or "image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@login_required
def run_heatmap(request, clinic_slug, run_id):
    run = analysis_selectors.get_run(request, run_id)
    require_care_team(request)
    result = getattr(run, "result", None)
    return _picture(result.heatmap if result else None)


@login_required
def run_change_map(request, clinic_slug, run_id, against):
    run = analysis_selectors.get_run(request, run_id)
    require_care_team(request)
    comparison = run.comparisons.filter(against=against).first()
    return _picture(comparison.change_map if comparison else None)


@login_required
def photo_thumb(request, clinic_slug, photo_id):
    """A small JPEG for timelines and the patient portal: made once from the stored photo, kept
    beside it, never public. Visible to whoever may see the photo itself (its patient included)."""
    photo = selectors.get_photo(request, photo_id)
    name = thumbs.thumbnail(photo, thumbs.TIMELINE_PX)
    response = FileResponse(default_storage.open(name, "rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@login_required
def visit_report(request, clinic_slug, visit_id):
    from patients import report

    visit = selectors.get_visit(request, visit_id)
    require_care_team(request)
    paper = "letter" if request.GET.get("paper") == "letter" else "a4"
    pdf = report.visit_report_pdf(visit=visit, clinic=request.clinic, paper=paper,
                                  author=request.user.get_full_name() or request.user.username)
    services.audit_record(request=request, patient=visit.patient, action=AuditEvent.Action.DOWNLOAD, obj=visit)
    response = HttpResponse(pdf, content_type="application/pdf")
    disposition = "attachment" if request.GET.get("download") else "inline"
    name = f"visit-report-{visit.patient.external_id}-{visit.date:%Y-%m-%d}.pdf".replace('"', "")
    response["Content-Disposition"] = f'{disposition}; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response
