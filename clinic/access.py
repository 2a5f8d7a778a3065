"""Role checks for views under /c/<clinic_slug>/ (the middleware has set request.membership)."""

from functools import wraps

from django.core.exceptions import PermissionDenied

from clinic.models import CARE_TEAM_ROLES, Role


def require_role(request, roles) -> None:
    if request.membership is None or request.membership.role not in roles:
        raise PermissionDenied("Your role in this clinic does not allow this.")


def require_care_team(request) -> None:
    require_role(request, CARE_TEAM_ROLES)


def care_team_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        require_care_team(request)
        return view(request, *args, **kwargs)

    return wrapper


def clinic_admin_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        require_role(request, {Role.ADMIN})
        return view(request, *args, **kwargs)

    return wrapper
