import uuid

from django.conf import settings
from django.db import models

from clinic.models import TenantOwned


class Sex(models.TextChoices):
    MALE = "male", "Male"
    FEMALE = "female", "Female"
    UNKNOWN = "unknown", "Not recorded"


class View(models.TextChoices):
    CROWN = "crown", "Crown"
    HAIRLINE = "hairline", "Hairline"
    TEMPLE_LEFT = "temple_left", "Left temple"
    TEMPLE_RIGHT = "temple_right", "Right temple"
    PART_LINE = "part_line", "Part line"
    TRICHOSCOPY = "trichoscopy", "Trichoscopy close-up"


STANDARD_VIEWS = [v for v in View if v != View.TRICHOSCOPY]


class Patient(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    external_id = models.CharField(max_length=64, help_text="The clinic's own record number.")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    date_of_birth = models.DateField(null=True, blank=True)
    sex_at_birth = models.CharField(
        max_length=10, choices=Sex.choices, default=Sex.UNKNOWN,
        help_text="Chooses the grading scale: Norwood–Hamilton for male, Ludwig for female.",
    )
    portal_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="patient_records"
    )
    baseline_visit = models.ForeignKey(
        "Visit", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Visit that changes are measured against; the first visit when empty.",
    )
    # Raised by database triggers (migration 0002) in the transaction of every write that changes what
    # the timeline shows, whoever writes (web, workers, admin, SQL): the timeline's cache key.
    timeline_version = models.BigIntegerField(default=0, db_default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clinic", "external_id"], name="external_id_unique_per_clinic")
        ]
        indexes = [models.Index(fields=["clinic", "last_name", "first_name"])]
        ordering = ["last_name", "first_name"]

    def __str__(self):
        return f"{self.last_name}, {self.first_name} ({self.external_id})"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Visit(TenantOwned):
    class Kind(models.TextChoices):
        CLINIC = "clinic", "Clinic visit"
        HOME = "home", "Home check-in"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETE = "complete", "Complete"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="visits")
    date = models.DateField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CLINIC)
    clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["date", "created_at"]
        indexes = [models.Index(fields=["clinic", "patient", "date"])]

    def __str__(self):
        return f"{self.get_kind_display()} on {self.date}"


def photo_upload_path(photo, filename):
    # Server-made path: the uploader's file name never reaches the storage.
    return f"clinics/{photo.clinic_id}/photos/{photo.id}.{photo.file_extension}"


class Photo(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="photos")
    view = models.CharField(max_length=20, choices=View.choices)
    site_label = models.CharField(
        max_length=80, blank=True, help_text="For trichoscopy: the marked scalp site, e.g. 'vertex, 2 cm left'."
    )
    file = models.FileField(upload_to=photo_upload_path, max_length=200)
    content_type = models.CharField(max_length=40)
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    captured_at = models.DateTimeField(null=True, blank=True)
    capture_device = models.CharField(max_length=120, blank=True)
    mm_per_px_override = models.FloatField(
        null=True, blank=True, help_text="Scale set by a clinician; wins over the card and the device scale."
    )
    excluded_from_trend = models.BooleanField(default=False)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["visit", "sha256"], name="same_image_once_per_visit")]
        ordering = ["uploaded_at"]

    def __str__(self):
        return f"{self.get_view_display()} photo {self.id}"

    @property
    def file_extension(self) -> str:
        return {"image/jpeg": "jpg", "image/png": "png"}.get(self.content_type, "bin")


class TreatmentDetails(models.Model):
    """What a treatment says; a revision keeps the same fields as they were before an edit."""

    name = models.CharField(max_length=120)
    dose = models.CharField(max_length=120, blank=True)
    start = models.DateField()
    stop = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.name} {self.dose}".strip()


class Treatment(TenantOwned, TreatmentDetails):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="treatments")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["start"]


class TreatmentRevision(TenantOwned, TreatmentDetails):
    """What a treatment said before each edit (name, dose, dates, notes): treatment records are
    part of the medical record, and a corrected dose or stop date must stay traceable."""

    treatment = models.ForeignKey(Treatment, on_delete=models.CASCADE, related_name="revisions")
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["replaced_at"]


class ClinicalNote(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]


class ClinicalNoteRevision(TenantOwned):
    """The text a note had before each edit: notes are medical records and keep their history."""

    note = models.ForeignKey(ClinicalNote, on_delete=models.CASCADE, related_name="revisions")
    text = models.TextField()
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["replaced_at"]


class SeverityGrade(TenantOwned):
    class Scale(models.TextChoices):
        NORWOOD = "norwood", "Norwood–Hamilton"
        LUDWIG = "ludwig", "Ludwig"
        SINCLAIR = "sinclair", "Sinclair"

    class Source(models.TextChoices):
        AI = "ai", "AI suggestion"
        CLINICIAN = "clinician", "Clinician"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="grades")
    scale = models.CharField(max_length=10, choices=Scale.choices)
    value = models.CharField(max_length=20)
    source = models.CharField(max_length=10, choices=Source.choices)
    confidence = models.FloatField(null=True, blank=True)
    graded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    graded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["graded_at"]


class Consent(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="consents")
    version = models.CharField(max_length=20)
    text_snapshot = models.TextField()
    accepted_at = models.DateTimeField()
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")


class AuditEvent(TenantOwned):
    class Action(models.TextChoices):
        VIEW = "view", "Viewed"
        DOWNLOAD = "download", "Downloaded"
        CREATE = "create", "Created"
        CHANGE = "change", "Changed"
        DELETE = "delete", "Deleted"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    patient = models.ForeignKey(Patient, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=10, choices=Action.choices)
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=64)
    ip_address = models.GenericIPAddressField(null=True)
    user_agent = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["clinic", "patient", "at"])]
