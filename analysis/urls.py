"""Included under /c/<clinic_slug>/analysis/ (clinic/urls.py)."""

from django.urls import path

from analysis import views

urlpatterns = [
    path("visits/<uuid:visit_id>/status/", views.visit_status, name="analysis_visit_status"),
    path("photos/<uuid:photo_id>/status/", views.photo_status, name="analysis_photo_status"),
    path("runs/<uuid:run_id>/retry/", views.run_retry, name="analysis_run_retry"),
]
