from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ClinicConfig(AppConfig):
    name = "clinic"
    verbose_name = "Clinics and tenancy"

    def ready(self):
        from clinic import checks  # noqa: F401  (registers the RLS system check)
        from clinic.rls import on_post_migrate

        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="clinic.rls")
