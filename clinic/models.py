import uuid

from django.conf import settings
from django.db import models


class Clinic(models.Model):
    """A tenant: one dermatology clinic and everything it owns."""

    class GradingScale(models.TextChoices):
        NORWOOD_LUDWIG = "norwood_ludwig", "Norwood–Hamilton (men) / Ludwig (women)"
        NORWOOD_SINCLAIR = "norwood_sinclair", "Norwood–Hamilton (men) / Sinclair (women)"

    class Units(models.TextChoices):
        METRIC = "metric", "Metric (cm², mm, µm)"
        IMPERIAL = "imperial", "Imperial (in², in) with µm calibre"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    grading_scale = models.CharField(max_length=30, choices=GradingScale.choices, default=GradingScale.NORWOOD_LUDWIG)
    vellus_max_um = models.FloatField(default=40.0, help_text="Hairs thinner than this are vellus.")
    terminal_min_um = models.FloatField(default=60.0, help_text="Hairs at least this thick are terminal.")
    units = models.CharField(max_length=10, choices=Units.choices, default=Units.METRIC)
    report_header = models.TextField(blank=True, help_text="Printed at the top of visit reports (address, phone).")
    trichoscope_mm_per_px = models.FloatField(
        null=True, blank=True, help_text="Known scale of the clinic's dermoscope, used when no card is visible."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", "Clinic admin"
    CLINICIAN = "clinician", "Clinician"
    STAFF = "staff", "Staff"
    PATIENT = "patient", "Patient"


CARE_TEAM_ROLES = frozenset({Role.ADMIN, Role.CLINICIAN, Role.STAFF})


class TenantOwned(models.Model):
    """Base for every row that belongs to one clinic.

    Row-level security on PostgreSQL is applied to every concrete subclass by
    clinic.rls after each migrate, so a new tenant table is covered without extra steps.
    """

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+", editable=False)

    class Meta:
        abstract = True


class Membership(TenantOwned):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "clinic"], name="one_membership_per_clinic")]

    def __str__(self):
        return f"{self.user} — {self.role} at {self.clinic_id}"

    @property
    def is_care_team(self) -> bool:
        return self.role in CARE_TEAM_ROLES
