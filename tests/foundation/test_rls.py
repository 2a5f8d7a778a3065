"""Row-level security, checked with raw SQL as the application's database role."""

import pytest
from django.db import connection, transaction
from django.db.utils import ProgrammingError

from clinic.rls import tables_without_policy, tenant_models
from clinic.tenancy import set_current_clinic

pytestmark = pytest.mark.django_db


def _count(table):
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')
        return cursor.fetchone()[0]


def test_every_tenant_table_has_a_forced_policy():
    assert connection.vendor == "postgresql"
    assert tenant_models(), "no tenant-owned models found"
    assert tables_without_policy() == []


def test_the_app_role_cannot_bypass_row_level_security():
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)


def test_a_table_without_its_policy_is_reported():
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute('ALTER TABLE "patients_treatment" NO FORCE ROW LEVEL SECURITY')
        assert tables_without_policy() == ["patients_treatment"]
        transaction.set_rollback(True)


def test_no_clinic_set_means_no_rows(world):
    with transaction.atomic():
        set_current_clinic(None)
        assert _count("patients_patient") == 0
        assert _count("patients_photo") == 0


def test_a_clinic_sees_only_its_own_rows(world):
    with transaction.atomic():
        set_current_clinic(world.clinic_a.id)
        with connection.cursor() as cursor:
            cursor.execute("SELECT external_id FROM patients_patient")
            assert [row[0] for row in cursor.fetchall()] == ["A-001"]
        # Even an explicit filter on the other clinic returns nothing.
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM patients_patient WHERE clinic_id = %s", [world.clinic_b.id])
            assert cursor.fetchone()[0] == 0


def test_a_clinic_cannot_write_into_another(world):
    with pytest.raises(ProgrammingError, match="row-level security"):
        with transaction.atomic():
            set_current_clinic(world.clinic_a.id)
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO patients_patient (id, clinic_id, external_id, first_name, last_name, "
                    "sex_at_birth, created_at) VALUES (gen_random_uuid(), %s, 'X', 'x', 'x', 'unknown', now())",
                    [world.clinic_b.id],
                )


def test_a_clinic_cannot_update_another_clinics_rows(world):
    with transaction.atomic():
        set_current_clinic(world.clinic_a.id)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE patients_patient SET last_name = 'changed' WHERE clinic_id = %s",
                           [world.clinic_b.id])
            assert cursor.rowcount == 0


@pytest.mark.django_db(transaction=True)
def test_the_setting_ends_with_its_transaction(world):
    with transaction.atomic():
        set_current_clinic(world.clinic_a.id)
        assert _count("patients_patient") == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.clinic_id', true)")
        assert cursor.fetchone()[0] in (None, "")


def test_an_error_inside_a_clinic_context_is_not_hidden_and_the_setting_is_undone(world):
    from django.db import IntegrityError

    from clinic.tenancy import clinic_context
    from patients import services

    with pytest.raises(IntegrityError):  # not "current transaction is aborted" from the clean-up
        with clinic_context(world.clinic_a.id):
            services.patient_create(clinic=world.clinic_a, external_id="A-001", first_name="x", last_name="y")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.clinic_id', true)")
        assert cursor.fetchone()[0] in (None, "")
