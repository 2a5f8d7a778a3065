from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from clinic.access import clinic_admin_required
from clinic.forms import ClinicSettingsForm, MemberAddForm
from clinic.middleware import clinics_of
from clinic.models import Membership
from clinic.services import membership_add


@login_required
def home(request):
    clinics = clinics_of(request)
    if len(clinics) == 1:
        return redirect("dashboard", clinic_slug=clinics[0].slug)
    return render(request, "clinic/choose.html", {"clinics": clinics})


@login_required
@clinic_admin_required
@require_http_methods(["GET", "POST"])
def members(request, clinic_slug):
    form = MemberAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        membership = membership_add(clinic=request.clinic, request=request, **form.cleaned_data)
        messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
        return redirect("members", clinic_slug=clinic_slug)
    memberships = Membership.objects.filter(clinic=request.clinic).select_related("user").order_by("role",
                                                                                                   "user__email")
    return render(request, "clinic/members.html", {"form": form, "memberships": memberships})


@login_required
@clinic_admin_required
@require_http_methods(["GET", "POST"])
def clinic_settings(request, clinic_slug):
    form = ClinicSettingsForm(request.POST or None, instance=request.clinic)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Clinic settings saved.")
        return redirect("clinic_settings", clinic_slug=clinic_slug)
    return render(request, "clinic/settings.html", {"form": form})
