"""The current clinic: how a request or a worker tells the database whose rows it may see.

On PostgreSQL every tenant table has a row-level-security policy on the setting
``app.clinic_id`` (see clinic.rls). These helpers set it with ``set_config(..., true)``,
the function form of ``SET LOCAL``, so it ends with the transaction that set it and a
pooled connection never carries one request's clinic into the next.
"""

from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.http import Http404

CLINIC_SETTING = "app.clinic_id"
USER_SETTING = "app.user_id"
BYPASS_SETTING = "app.rls_bypass"


def _uses_rls() -> bool:
    return connection.vendor == "postgresql"


def _set_local(name: str, value: str) -> None:
    _set_many_local({name: value})


def _set_many_local(values: dict[str, str]) -> None:
    if not _uses_rls():
        return
    if not connection.in_atomic_block:
        raise RuntimeError(f"{', '.join(values)} must be set inside a transaction, or it would outlive it")
    calls = ", ".join("set_config(%s, %s, true)" for _ in values)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {calls}", [item for pair in values.items() for item in pair])


def reset_for_request(user_id) -> None:
    """Start of a request: this user, no clinic yet (one round trip)."""
    _set_many_local({USER_SETTING: str(user_id) if user_id else "", CLINIC_SETTING: ""})


def set_current_clinic(clinic_id) -> None:
    _set_local(CLINIC_SETTING, str(clinic_id) if clinic_id else "")


def set_current_user(user_id) -> None:
    _set_local(USER_SETTING, str(user_id) if user_id else "")


def set_rls_bypass(on: bool) -> None:
    _set_local(BYPASS_SETTING, "on" if on else "")


@contextmanager
def clinic_context(clinic_id):
    """Run a block (an actor, a command) as one clinic, in its own transaction."""
    with transaction.atomic():
        set_current_clinic(clinic_id)
        yield
        # Only on success: a failed block's savepoint rollback already undoes the setting, and a query
        # on an aborted transaction would hide the original error.
        set_current_clinic(None)


@contextmanager
def operator_context():
    """For the platform operator's tools only (admin, seeding, sweeper): sees every clinic."""
    with transaction.atomic():
        set_rls_bypass(True)
        yield
        set_rls_bypass(False)  # only on success, as in clinic_context


def get_object_for_clinic(queryset, clinic, **lookup):
    """The one accessor for tenant-owned rows: 404 alike for missing and not-yours."""
    try:
        return queryset.filter(clinic=clinic).get(**lookup)
    except (queryset.model.DoesNotExist, ValidationError, ValueError):
        # ValidationError: a malformed UUID in the URL is just another "not found".
        raise Http404("Not found") from None
