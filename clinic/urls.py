from django.contrib import admin
from django.urls import include, path

from clinic import views as clinic_views
from patients import api
from patients import views as patient_views

clinic_patterns = [
    path("", patient_views.dashboard, name="dashboard"),
    path("members/", clinic_views.members, name="members"),
    path("settings/", clinic_views.clinic_settings, name="clinic_settings"),
    path("patients/new/", patient_views.patient_create, name="patient_create"),
    path("patients/<uuid:patient_id>/", patient_views.patient_detail, name="patient_detail"),
    path("patients/<uuid:patient_id>/visits/new/", patient_views.visit_create, name="visit_create"),
    path("visits/<uuid:visit_id>/", patient_views.visit_detail, name="visit_detail"),
    path("visits/<uuid:visit_id>/upload/", patient_views.photo_upload, name="photo_upload"),
    path("photos/<uuid:photo_id>/file/", patient_views.photo_file, name="photo_file"),
    path("portal/", patient_views.portal, name="portal"),
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
