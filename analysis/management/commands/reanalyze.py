"""Re-run analyses: chosen visits, or every photo whose current result came from a given (older)
model version. Each photo gets a new run; the old runs and results stay for audit.

    python manage.py reanalyze --visit <uuid> [--visit <uuid> ...]
    python manage.py reanalyze --model-version unet-b8-v1+metrics-1
    python manage.py reanalyze --not-current-model [--clinic demo] [--dry-run]
"""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import OuterRef, Subquery

from analysis import broker as broker_setup
from analysis import services
from analysis.models import AnalysisRun
from clinic.models import Clinic
from clinic.tenancy import clinic_context, operator_context
from patients.models import Photo


class Command(BaseCommand):
    help = "Re-analyse chosen visits, or all photos last analysed by a given or outdated model version."

    def add_arguments(self, parser):
        parser.add_argument("--visit", action="append", default=[], help="Visit id (repeatable).")
        parser.add_argument("--model-version", help="Photos whose current result used this model version.")
        parser.add_argument("--not-current-model", action="store_true",
                            help="Photos whose current result used any model version but the one workers load now.")
        parser.add_argument("--clinic", help="Limit to one clinic (slug).")
        parser.add_argument("--reason", default="reanalysis")
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--wait", action="store_true", help="Embedded broker only: wait for the results.")

    def handle(self, *args, visit, model_version, not_current_model, clinic, reason, dry_run, wait, **options):
        if not (visit or model_version or not_current_model):
            raise CommandError("choose --visit, --model-version or --not-current-model")
        if not_current_model:
            from analysis.processing import pipeline_for_worker

            current = pipeline_for_worker().model_version
        with operator_context():
            photos = Photo.objects.all()
            if clinic:
                chosen = Clinic.objects.filter(slug=clinic).first()
                if chosen is None:
                    raise CommandError(f"no clinic with the slug {clinic!r}")
                photos = photos.filter(clinic=chosen)
            if visit:
                photos = photos.filter(visit_id__in=visit)
            latest_done = (AnalysisRun.objects.filter(photo=OuterRef("pk"), status=AnalysisRun.Status.DONE)
                           .order_by("-finished_at").values("model_version")[:1])
            photos = photos.annotate(current_model=Subquery(latest_done))
            if model_version:
                photos = photos.filter(current_model=model_version)
            if not_current_model:
                photos = photos.exclude(current_model=current).exclude(current_model=None)
            by_clinic: dict = {}
            for photo in photos.select_related("clinic", "visit__patient").order_by("visit_id", "uploaded_at"):
                by_clinic.setdefault(photo.clinic_id, []).append(photo)
        total = sum(len(p) for p in by_clinic.values())
        self.stdout.write(f"{total} photo(s) in {len(by_clinic)} clinic(s) to re-analyse")
        if dry_run or not total:
            return
        for clinic_id, clinic_photos in by_clinic.items():
            with clinic_context(clinic_id):
                services.analysis_reanalyze(photos=clinic_photos, reason=reason)
        self.stdout.write(self.style.SUCCESS(f"queued {total} new run(s)"))
        if wait and broker_setup.is_embedded():
            broker_setup.join_embedded()
