"""Operator's view of analysis runs (the Django admin bypasses RLS for superusers only)."""

from django.contrib import admin

from analysis.models import AnalysisRun, PhotoComparison, PhotoResult


@admin.register(AnalysisRun)
class AnalysisRunAdmin(admin.ModelAdmin):
    list_display = ["id", "clinic", "status", "reason", "model_version", "attempts", "error_kind", "queued_at",
                    "finished_at", "worker"]
    list_filter = ["status", "error_kind", "reason", "model_version"]
    search_fields = ["id", "photo__id", "visit__id", "error_reason"]
    list_select_related = ["clinic"]
    readonly_fields = [f.name for f in AnalysisRun._meta.fields]
    ordering = ["-queued_at"]

    def has_add_permission(self, request):
        return False  # runs are made by uploads, retries and `reanalyze`, never by hand


@admin.register(PhotoResult)
class PhotoResultAdmin(admin.ModelAdmin):
    list_display = ["run", "photo", "quality_ok", "created_at"]
    readonly_fields = ["run", "photo", "metrics", "quality_ok", "heatmap", "mask", "created_at"]


@admin.register(PhotoComparison)
class PhotoComparisonAdmin(admin.ModelAdmin):
    list_display = ["run", "photo", "against", "other_photo", "created_at"]
    readonly_fields = ["run", "photo", "against", "other_photo", "data", "change_map", "created_at"]
