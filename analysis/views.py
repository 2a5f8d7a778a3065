"""Analysis status as JSON (polled by static/js/analysis-status.js) and the retry button."""

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from analysis import selectors, services
from clinic.access import require_care_team
from patients import selectors as patient_selectors


def _no_store(response):
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def visit_status(request, clinic_slug, visit_id):
    visit = patient_selectors.get_visit(request, visit_id)
    return _no_store(JsonResponse(selectors.visit_status(visit)))


@login_required
@require_GET
def photo_status(request, clinic_slug, photo_id):
    photo = patient_selectors.get_photo(request, photo_id)
    run = selectors.latest_runs([photo]).get(photo.id)
    return _no_store(JsonResponse(selectors.photo_status(photo, run)))


@login_required
@require_POST
def run_retry(request, clinic_slug, run_id):
    require_care_team(request)
    run = selectors.get_run(request, run_id)
    try:
        new = services.run_retry(run=run)
    except ValueError as error:
        return JsonResponse({"error": str(error)}, status=409)
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"run": str(new.id), "status": new.status}, status=201)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = ""
    return redirect(back or "visit_detail", **({} if back else {"clinic_slug": clinic_slug, "visit_id": run.visit_id}))
