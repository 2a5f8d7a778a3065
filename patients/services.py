"""Every change to patient records goes through these functions (views and actors stay thin)."""

from datetime import date

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from patients.images import UploadRejected, clean_upload
from patients.models import (
    AuditEvent,
    ClinicalNote,
    ClinicalNoteRevision,
    Consent,
    Patient,
    Photo,
    SeverityGrade,
    Treatment,
    TreatmentDetails,
    TreatmentRevision,
    View,
    Visit,
)


class DuplicatePhoto(UploadRejected):
    def __init__(self, existing: Photo):
        self.existing = existing
        super().__init__(
            f"This image is already in this visit (the {existing.get_view_display().lower()} photo "
            f"uploaded {timezone.localtime(existing.uploaded_at):%Y-%m-%d %H:%M}); it was not stored again."
        )


def patient_create(*, clinic, external_id: str, first_name: str, last_name: str,
                   date_of_birth: date | None = None, sex_at_birth: str = "unknown", portal_user=None) -> Patient:
    return Patient.objects.create(
        clinic=clinic, external_id=external_id.strip(), first_name=first_name.strip(),
        last_name=last_name.strip(), date_of_birth=date_of_birth, sex_at_birth=sex_at_birth,
        portal_user=portal_user,
    )


def visit_create(*, patient: Patient, visit_date: date, kind: str = Visit.Kind.CLINIC, clinician=None) -> Visit:
    return Visit.objects.create(clinic_id=patient.clinic_id, patient=patient, date=visit_date, kind=kind,
                                clinician=clinician)


def photo_upload(*, visit: Visit, data: bytes, view: str, uploaded_by, site_label: str = "") -> Photo:
    """Validate, clean and store one photo; analysis is requested once the row is committed."""
    if view not in View.values:
        raise UploadRejected(f"Unknown view {view!r}; choose one of {', '.join(View.values)}.")
    if view == View.TRICHOSCOPY and not site_label.strip():
        raise UploadRejected("A trichoscopy close-up needs its scalp site (e.g. 'vertex, 2 cm left of midline').")
    clean = clean_upload(data)
    existing = Photo.objects.filter(visit=visit, sha256=clean.sha256).first()
    if existing is not None:
        raise DuplicatePhoto(existing)
    photo = Photo(
        clinic_id=visit.clinic_id, visit=visit, view=view, site_label=site_label.strip(),
        content_type=clean.content_type, sha256=clean.sha256, width=clean.width, height=clean.height,
        captured_at=clean.captured_at, capture_device=clean.capture_device, uploaded_by=uploaded_by,
    )
    with transaction.atomic():
        photo.file.save("upload", ContentFile(clean.content), save=False)
        photo.save()
        _request_analysis(photo)
    return photo


def _request_analysis(photo: Photo) -> None:
    from analysis.services import analysis_request  # analysis depends on patients, not the reverse

    analysis_request(photo=photo, reason="upload")


def treatment_create(*, patient: Patient, name: str, start: date, dose: str = "", stop: date | None = None,
                     notes: str = "", by=None) -> Treatment:
    if stop and stop < start:
        raise ValueError("A treatment cannot stop before it starts.")
    return Treatment.objects.create(clinic_id=patient.clinic_id, patient=patient, name=name, dose=dose,
                                    start=start, stop=stop, notes=notes, created_by=by)


def note_create(*, visit: Visit, author, text: str) -> ClinicalNote:
    return ClinicalNote.objects.create(clinic_id=visit.clinic_id, visit=visit, author=author, text=text)


@transaction.atomic
def note_edit(*, note: ClinicalNote, editor, text: str) -> ClinicalNote:
    """Keep the old text as a revision: a clinical note's history is part of the record."""
    if text == note.text:
        return note
    ClinicalNoteRevision.objects.create(clinic_id=note.clinic_id, note=note, text=note.text, edited_by=editor)
    note.text = text
    note.author = note.author or editor
    note.save(update_fields=["text", "author", "updated_at"])
    return note


def grade_set(*, visit: Visit, scale: str, value: str, by, source: str = SeverityGrade.Source.CLINICIAN,
              confidence: float | None = None) -> SeverityGrade:
    return SeverityGrade.objects.create(clinic_id=visit.clinic_id, visit=visit, scale=scale, value=value,
                                        source=source, confidence=confidence, graded_by=by)


def consent_record(*, patient: Patient, version: str, text: str, by) -> Consent:
    return Consent.objects.create(clinic_id=patient.clinic_id, patient=patient, version=version,
                                  text_snapshot=text, accepted_at=timezone.now(), accepted_by=by)


def audit_record(*, request, patient: Patient | None, action: str, obj) -> None:
    AuditEvent.objects.create(
        clinic_id=request.clinic.id,
        user=request.user if request.user.is_authenticated else None,
        patient=patient,
        action=action,
        object_type=obj._meta.model_name,
        object_id=str(obj.pk),
        ip_address=request.META.get("REMOTE_ADDR"),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
    )


# Clinician workspace: corrections and record keeping -------------------------------------------

def patient_baseline_set(*, patient: Patient, visit: Visit | None) -> Patient:
    """Measure changes against `visit` from now on (None: the first visit)."""
    if visit is not None and visit.patient_id != patient.id:
        raise ValueError("The baseline must be one of this patient's visits.")
    patient.baseline_visit = visit
    patient.save(update_fields=["baseline_visit"])
    return patient


def photo_trend_exclusion_set(*, photo: Photo, excluded: bool) -> Photo:
    photo.excluded_from_trend = excluded
    photo.save(update_fields=["excluded_from_trend"])
    return photo


def photo_scale_set(*, photo: Photo, mm_per_px: float | None, by) -> Photo:
    """A clinician's scale wins over the card; results measured with the old scale need a new run."""
    if mm_per_px is not None and not 0.0005 <= mm_per_px <= 1.0:
        raise ValueError("A scale must lie between 0.0005 and 1 mm per pixel.")
    photo.mm_per_px_override = mm_per_px
    with transaction.atomic():
        photo.save(update_fields=["mm_per_px_override"])
        from analysis.services import analysis_request

        analysis_request(photo=photo, reason="scale corrected")
    return photo


TREATMENT_FIELDS = tuple(f.name for f in TreatmentDetails._meta.get_fields())


def treatment_update(*, treatment: Treatment, name: str, dose: str, start: date, stop: date | None,
                     notes: str = "", by=None) -> Treatment:
    """Change a treatment and keep what it said before as a revision (nothing when unchanged)."""
    if stop and stop < start:
        raise ValueError("A treatment cannot stop before it starts.")
    new = {"name": name, "dose": dose, "start": start, "stop": stop, "notes": notes}
    if all(getattr(treatment, f) == new[f] for f in TREATMENT_FIELDS):
        return treatment
    with transaction.atomic():
        TreatmentRevision.objects.create(
            clinic_id=treatment.clinic_id, treatment=treatment, edited_by=by,
            **{f: getattr(treatment, f) for f in TREATMENT_FIELDS},
        )
        for f in TREATMENT_FIELDS:
            setattr(treatment, f, new[f])
        treatment.save(update_fields=list(TREATMENT_FIELDS))
    return treatment
