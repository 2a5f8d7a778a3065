"""Reads of patient records, always through the clinic and the reader's role.

A patient-role member sees only their own record; everyone else in the care team sees
the clinic's. Anything outside that is a 404, the same as a record that does not exist.
"""

from django.db.models import Count, Max, Q

from clinic.models import Role
from clinic.tenancy import get_object_for_clinic
from patients.models import ClinicalNote, Patient, Photo, Treatment, Visit


def _is_patient(request) -> bool:
    return request.membership.role == Role.PATIENT


def visible_patients(request):
    patients = Patient.objects.filter(clinic=request.clinic)
    if _is_patient(request):
        patients = patients.filter(portal_user=request.user)
    return patients


def visible_visits(request):
    visits = Visit.objects.filter(clinic=request.clinic)
    if _is_patient(request):
        visits = visits.filter(patient__portal_user=request.user)
    return visits


def visible_photos(request):
    photos = Photo.objects.filter(clinic=request.clinic)
    if _is_patient(request):
        photos = photos.filter(visit__patient__portal_user=request.user)
    return photos


def get_patient(request, patient_id) -> Patient:
    return get_object_for_clinic(visible_patients(request), request.clinic, id=patient_id)


def get_visit(request, visit_id) -> Visit:
    return get_object_for_clinic(visible_visits(request).select_related("patient"), request.clinic, id=visit_id)


def get_photo(request, photo_id) -> Photo:
    return get_object_for_clinic(visible_photos(request).select_related("visit__patient"), request.clinic,
                                 id=photo_id)


def get_note(request, note_id) -> ClinicalNote:
    visits = visible_visits(request).values("id")
    return get_object_for_clinic(ClinicalNote.objects.filter(visit_id__in=visits).select_related("visit__patient"),
                                 request.clinic, id=note_id)


def get_treatment(request, treatment_id) -> Treatment:
    patients = visible_patients(request).values("id")
    return get_object_for_clinic(Treatment.objects.filter(patient_id__in=patients).select_related("patient"),
                                 request.clinic, id=treatment_id)


def patient_list(request, query: str = ""):
    """The dashboard list: one query whatever the number of patients (counts are annotated)."""
    patients = visible_patients(request).annotate(
        visit_count=Count("visits", distinct=True), last_visit=Max("visits__date")
    )
    query = query.strip()
    if query:
        patients = patients.filter(
            Q(last_name__icontains=query) | Q(first_name__icontains=query) | Q(external_id__icontains=query)
        )
    return patients.order_by("last_name", "first_name")
