from django.contrib import admin

from patients.models import AuditEvent, Patient, Photo, Visit


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["external_id", "last_name", "first_name", "clinic"]
    list_filter = ["clinic"]
    search_fields = ["external_id", "last_name"]


@admin.register(Visit)
class VisitAdmin(admin.ModelAdmin):
    list_display = ["patient", "date", "kind", "status", "clinic"]
    list_filter = ["clinic", "kind", "status"]


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = ["id", "view", "visit", "width", "height", "uploaded_at", "clinic"]
    list_filter = ["clinic", "view"]
    readonly_fields = ["sha256", "width", "height", "captured_at", "capture_device", "file"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is evidence and must not be edited."""

    list_display = ["at", "user", "action", "object_type", "patient", "ip_address", "clinic"]
    list_filter = ["clinic", "action"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
