"""Create (or refresh) the demo clinic with logins, one patient and three analysed visits."""

import datetime

import cv2
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from analysis.engine import phantoms
from clinic.models import Clinic, Membership, Role
from clinic.services import clinic_create
from clinic.tenancy import clinic_context, operator_context
from patients import services
from patients.models import Patient, View

DEMO_PASSWORD = "demo-trichotrack"
DEMO_USERS = [
    ("admin@demo.clinic", "Ada", "Admin", Role.ADMIN),
    ("clinician@demo.clinic", "Dana", "Derm", Role.CLINICIAN),
    ("staff@demo.clinic", "Sam", "Staff", Role.STAFF),
    ("patient@demo.clinic", "Pat", "Jones", Role.PATIENT),
]
DEMO_VIEWS = [View.CROWN, View.HAIRLINE, View.PART_LINE, View.TRICHOSCOPY]
DEMO_TRICHOSCOPE_MM_PER_PX = 0.006
# Months after baseline, and the fraction of baseline hair kept: a slow loss, then treatment.
DEMO_VISITS = [(0, 1.00), (4, 0.93), (8, 0.97)]


class Command(BaseCommand):
    help = "Create the demo clinic with a clinician, staff, an admin and a patient with three visits of photos."

    def add_arguments(self, parser):
        parser.add_argument("--slug", default="demo")
        parser.add_argument("--no-wait", action="store_true",
                            help="Do not wait for the in-process analysis (it continues in the background).")

    def handle(self, *args, slug, **options):
        with operator_context():
            clinic = Clinic.objects.filter(slug=slug).first()
            if clinic is None:
                clinic = clinic_create(slug=slug, name="Demo Hair Clinic",
                                       trichoscope_mm_per_px=DEMO_TRICHOSCOPE_MM_PER_PX,
                                       report_header="Demo Hair Clinic · 1 Example Street · +44 20 0000 0000")
            users = {role: self._user(email, first, last) for email, first, last, role in DEMO_USERS}
            for role, user in users.items():
                Membership.objects.update_or_create(clinic=clinic, user=user, defaults={"role": role})
            if not User().objects.filter(username="operator").exists():
                User().objects.create_superuser("operator", "operator@localhost", DEMO_PASSWORD)
        with clinic_context(clinic.id):
            if not Patient.objects.filter(clinic=clinic, external_id="DEMO-0001").exists():
                self._demo_patient(clinic, users[Role.PATIENT], users[Role.CLINICIAN])
        if not options.get("no_wait"):
            self._wait_for_analysis()
        self._print_logins(slug)

    def _user(self, email, first, last):
        user, created = User().objects.get_or_create(username=email, defaults={
            "email": email, "first_name": first, "last_name": last})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        return user

    def _demo_patient(self, clinic, portal_user, clinician):
        patient = services.patient_create(
            clinic=clinic, external_id="DEMO-0001", first_name="Pat", last_name="Jones",
            date_of_birth=datetime.date(1986, 3, 14), sex_at_birth="male", portal_user=portal_user,
        )
        start = datetime.date.today() - datetime.timedelta(days=30 * 8)
        baselines = {view: _baseline_phantom(view, seed=index) for index, view in enumerate(DEMO_VIEWS)}
        for months, kept in DEMO_VISITS:
            with transaction.atomic():
                visit = services.visit_create(patient=patient, visit_date=start + datetime.timedelta(days=30 * months),
                                              clinician=clinician)
                for view in DEMO_VIEWS:
                    base = baselines[view]
                    image = base.image if months == 0 else phantoms.follow_up(
                        base, seed=months, change_fraction=kept - 1.0, strength=0.3).image
                    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
                    services.photo_upload(visit=visit, data=encoded.tobytes(), view=view, uploaded_by=clinician,
                                          site_label="vertex, midline" if view == View.TRICHOSCOPY else "")
        services.treatment_create(patient=patient, name="Minoxidil 5% foam", dose="1 ml twice daily",
                                  start=start + datetime.timedelta(days=30 * 4), by=clinician)

    def _wait_for_analysis(self):
        """Embedded broker (the demo): the in-process worker analyses the uploads; wait for it, so
        the demo opens on analysed visits. With a real broker the worker processes do it."""
        from analysis.broker import is_embedded, join_embedded

        if is_embedded():
            self.stdout.write("Analysing the demo photos in-process ...")
            join_embedded()
        else:
            self.stdout.write("Demo photos queued for the analysis workers (python manage.py analysis_worker).")

    def _print_logins(self, slug):
        self.stdout.write(self.style.SUCCESS(f"Demo clinic ready at http://127.0.0.1:8000/c/{slug}/"))
        self.stdout.write(f"Password for every demo login: {DEMO_PASSWORD}")
        for email, _first, _last, role in DEMO_USERS:
            self.stdout.write(f"  {role.label:<13} {email}")
        self.stdout.write("  Operator      operator  (Django admin at /admin/)")


def _baseline_phantom(view, seed):
    """Synthetic photos with known truth: the demo shows real measurements of known change."""
    if view == View.TRICHOSCOPY:
        return phantoms.trichoscopy_phantom(seed, size_px=(1280, 1024), mm_per_px=DEMO_TRICHOSCOPE_MM_PER_PX,
                                            strength=0.3)
    return phantoms.overview_phantom(seed, view, size_px=(1600, 1200), strength=0.3, with_card=True)


def User():
    return get_user_model()
