from django.contrib import admin
from django.urls import include, path

from clinic import views as clinic_views
from patients import api, workspace
from patients import views as patient_views

clinic_patterns = [
    path("", patient_views.dashboard, name="dashboard"),
    path("members/", clinic_views.members, name="members"),
    path("settings/", clinic_views.clinic_settings, name="clinic_settings"),
    path("patients/new/", patient_views.patient_create, name="patient_create"),
    path("patients/<uuid:patient_id>/", workspace.patient_timeline, name="patient_detail"),
    path("patients/<uuid:patient_id>/visits/new/", patient_views.visit_create, name="visit_create"),
    path("visits/<uuid:visit_id>/", workspace.visit_page, name="visit_detail"),
    path("visits/<uuid:visit_id>/upload/", patient_views.photo_upload, name="photo_upload"),
    path("photos/<uuid:photo_id>/file/", patient_views.photo_file, name="photo_file"),
    path("portal/", patient_views.portal, name="portal"),
    path("analysis/", include("analysis.urls")),
    # Clinician workspace (patients/workspace.py)
    path("patients/<uuid:patient_id>/compare/", workspace.compare, name="compare"),
    path("patients/<uuid:patient_id>/baseline/", workspace.baseline_set, name="baseline_set"),
    path("patients/<uuid:patient_id>/treatments/", workspace.treatment_add, name="treatment_add"),
    path("treatments/<uuid:treatment_id>/", workspace.treatment_edit, name="treatment_edit"),
    path("visits/<uuid:visit_id>/grade/", workspace.grade_set, name="grade_set"),
    path("visits/<uuid:visit_id>/notes/", workspace.note_add, name="note_add"),
    path("notes/<uuid:note_id>/", workspace.note_edit, name="note_edit"),
    path("visits/<uuid:visit_id>/report.pdf", workspace.visit_report, name="visit_report"),
    path("photos/<uuid:photo_id>/correct/", workspace.photo_correct, name="photo_correct"),
    path("photos/<uuid:photo_id>/thumb.jpg", workspace.photo_thumb, name="photo_thumb"),
    # The .png paths are the pictures' addresses from before they became JPEGs (26 Nov 2026):
    # pages and bookmarks made then still find them. They come first, or "change-<against>"
    # would take "baseline.png" for the comparison's name.
    path("runs/<uuid:run_id>/heatmap.png", workspace.run_heatmap),
    path("runs/<uuid:run_id>/change-<str:against>.png", workspace.run_change_map),
    path("runs/<uuid:run_id>/heatmap", workspace.run_heatmap, name="run_heatmap"),
    path("runs/<uuid:run_id>/change-<str:against>", workspace.run_change_map, name="run_change_map"),
]

api_patterns = [
    path("patients/", api.PatientList.as_view(), name="api_patients"),
    path("patients/<uuid:patient_id>/", api.PatientDetail.as_view(), name="api_patient"),
    path("patients/<uuid:patient_id>/visits/", api.VisitList.as_view(), name="api_visits"),
    path("visits/<uuid:visit_id>/photos/", api.PhotoList.as_view(), name="api_photos"),
]

urlpatterns = [
    path("", clinic_views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("c/<slug:clinic_slug>/", include(clinic_patterns)),
    path("api/c/<slug:clinic_slug>/", include(api_patterns)),
]
