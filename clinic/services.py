from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.db import transaction

from clinic.models import Clinic, Membership


def clinic_create(*, slug: str, name: str, **settings) -> Clinic:
    return Clinic.objects.create(slug=slug, name=name, **settings)


@transaction.atomic
def membership_add(*, clinic: Clinic, email: str, role: str, first_name: str = "", last_name: str = "",
                   request=None) -> Membership:
    """Give a person a role in the clinic, creating their account (and a set-password email) if new."""
    User = get_user_model()
    email = email.strip().lower()
    user = User.objects.filter(email__iexact=email).first()
    created = user is None
    if created:
        user = User.objects.create_user(username=email, email=email, first_name=first_name, last_name=last_name)
        user.set_unusable_password()
        user.save(update_fields=["password"])
    membership, _ = Membership.objects.update_or_create(clinic=clinic, user=user, defaults={"role": role})
    if created and request is not None:
        transaction.on_commit(lambda: _send_set_password_email(request, email))
    return membership


def _send_set_password_email(request, email: str) -> None:
    form = PasswordResetForm({"email": email})
    form.is_valid()
    # Unusable passwords are skipped by default, which is exactly our new member: include them.
    form.get_users = lambda e: get_user_model().objects.filter(email__iexact=e, is_active=True)
    form.save(request=request, use_https=request.is_secure(),
              subject_template_name="registration/invite_subject.txt",
              email_template_name="registration/invite_email.txt")
