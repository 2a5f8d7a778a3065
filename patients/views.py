from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from clinic.access import care_team_required, require_care_team, require_role
from clinic.models import Role
from patients import selectors, services
from patients.forms import PatientForm, PhotoUploadForm, VisitForm
from patients.images import UploadRejected
from patients.models import AuditEvent, Photo


@login_required
def dashboard(request, clinic_slug):
    if request.membership.role == Role.PATIENT:
        return redirect("portal", clinic_slug=clinic_slug)
    query = request.GET.get("q", "")
    patients = selectors.patient_list(request, query)[:200]
    return render(request, "patients/dashboard.html", {"patients": patients, "query": query})


@login_required
@care_team_required
@require_http_methods(["GET", "POST"])
def patient_create(request, clinic_slug):
    form = PatientForm(request.POST or None, clinic=request.clinic)
    if request.method == "POST" and form.is_valid():
        patient = services.patient_create(clinic=request.clinic, **form.cleaned_data)
        messages.success(request, f"{patient.full_name} registered.")
        return redirect("patient_detail", clinic_slug=clinic_slug, patient_id=patient.id)
    return render(request, "patients/patient_form.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def visit_create(request, clinic_slug, patient_id):
    patient = selectors.get_patient(request, patient_id)
    require_care_team(request)
    form = VisitForm(request.POST or None, initial={"date": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        visit = services.visit_create(patient=patient, visit_date=form.cleaned_data["date"],
                                      kind=form.cleaned_data["kind"], clinician=request.user)
        return redirect("visit_detail", clinic_slug=clinic_slug, visit_id=visit.id)
    return render(request, "patients/visit_form.html", {"form": form, "patient": patient})


# patient_detail and visit_detail are the clinician workspace: see patients/workspace.py.


@login_required
@require_http_methods(["GET", "POST"])
def photo_upload(request, clinic_slug, visit_id):
    visit = selectors.get_visit(request, visit_id)
    require_role(request, {Role.ADMIN, Role.CLINICIAN, Role.STAFF})
    form = PhotoUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            photo = services.photo_upload(
                visit=visit, data=form.cleaned_data["file"].read(), view=form.cleaned_data["view"],
                site_label=form.cleaned_data["site_label"], uploaded_by=request.user,
            )
        except UploadRejected as error:
            form.add_error("file", str(error))
        else:
            messages.success(request, f"{photo.get_view_display()} photo stored; analysis queued.")
            return redirect("photo_upload", clinic_slug=clinic_slug, visit_id=visit.id)
    status = 400 if form.errors else 200
    return render(request, "patients/photo_upload.html",
                  {"form": form, "visit": visit, "patient": visit.patient,
                   "photos": visit.photos.order_by("-uploaded_at")}, status=status)


@login_required
def photo_file(request, clinic_slug, photo_id):
    """The only way a stored photo leaves the server: after the same checks as its record."""
    photo: Photo = selectors.get_photo(request, photo_id)
    services.audit_record(request=request, patient=photo.visit.patient, action=AuditEvent.Action.DOWNLOAD,
                          obj=photo)
    response = FileResponse(photo.file.open("rb"), content_type=photo.content_type)
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Disposition"] = f'inline; filename="{photo.view}-{photo.id}.{photo.file_extension}"'
    return response


@login_required
def portal(request, clinic_slug):
    """A patient's own records (read-only until the patient-portal issue adds home capture)."""
    require_role(request, {Role.PATIENT})
    patients = selectors.visible_patients(request).prefetch_related("visits__photos")
    return render(request, "patients/portal.html", {"patients": patients})
