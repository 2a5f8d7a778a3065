from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import Http404

from clinic.models import Clinic, Membership
from clinic.tenancy import reset_for_request, set_current_clinic, set_current_user, set_rls_bypass


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
        request.my_memberships = None
        with transaction.atomic():
            request.tenant_user_id = request.user.pk if request.user.is_authenticated else None
            reset_for_request(request.tenant_user_id)
            return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/admin/") and request.user.is_superuser:
            set_rls_bypass(True)  # the platform operator's admin sees every clinic
            return None
        slug = view_kwargs.get("clinic_slug")
        if slug is None or request.path_info.startswith("/api/"):
            return None  # the API authenticates in DRF and enters the clinic there (patients.api)
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        enter_clinic(request, request.user, slug)
        return None


def enter_clinic(request, user, slug: str) -> Membership:
    """Make `slug` the request's clinic if `user` is a member; otherwise 404."""
    if getattr(request, "tenant_user_id", None) != user.pk:
        # The API authenticates after the middleware ran; RLS shows a user only their own memberships.
        set_current_user(user.pk)
        request.tenant_user_id = user.pk
    # One query gives both the membership here and the clinic switcher's list.
    request.my_memberships = memberships_of(user)
    membership = next((m for m in request.my_memberships if m.clinic.slug == slug), None)
    if membership is None:
        raise Http404("Not found")
    set_current_clinic(membership.clinic_id)
    request.clinic = membership.clinic
    request.membership = membership
    return membership


def memberships_of(user) -> list[Membership]:
    if not user.is_authenticated:
        return []
    return list(Membership.objects.select_related("clinic").filter(user=user).order_by("clinic__name"))


def clinics_of(request) -> list[Clinic]:
    memberships = getattr(request, "my_memberships", None)
    if memberships is None:
        memberships = request.my_memberships = memberships_of(request.user)
    return [m.clinic for m in memberships]
