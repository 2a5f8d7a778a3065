from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import Http404

from clinic.models import Clinic, Membership
from clinic.tenancy import set_current_clinic, set_current_user, set_rls_bypass


class TenantMiddleware:
    """Wraps each request in one transaction that carries the current clinic.

    Views under /c/<clinic_slug>/ get ``request.clinic`` and ``request.membership``;
    a user without a membership there gets 404, the same answer as a clinic that does
    not exist, so slugs of other clinics cannot be probed.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.clinic = None
        request.membership = None
        with transaction.atomic():
            user = request.user
            set_current_user(user.pk if user.is_authenticated else None)
            set_current_clinic(None)
            return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/admin/") and request.user.is_superuser:
            set_rls_bypass(True)  # the platform operator's admin sees every clinic
            return None
        slug = view_kwargs.get("clinic_slug")
        if slug is None:
            return None
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership = (
            Membership.objects.select_related("clinic").filter(user=request.user, clinic__slug=slug).first()
        )
        if membership is None:
            raise Http404("Not found")
        set_current_clinic(membership.clinic_id)
        request.clinic = membership.clinic
        request.membership = membership
        return None


def clinics_of(user) -> list[Clinic]:
    if not user.is_authenticated:
        return []
    return [m.clinic for m in Membership.objects.select_related("clinic").filter(user=user).order_by("clinic__name")]
