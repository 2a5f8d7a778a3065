"""PostgreSQL row-level security for every tenant-owned table.

Applied after every ``migrate`` (post_migrate), so each concrete TenantOwned model is
covered as soon as its table exists. ``FORCE`` makes the policy bind the table owner too,
which is the role the app connects as.
"""

from django.apps import apps
from django.db import connections

from clinic.models import Membership, TenantOwned

POLICY = "tenant_isolation"
# The setting is cast once to the column's type (not the column to text for every row), so the
# planner can use clinic_id indexes; an unset or empty setting is NULL and matches no row.
_SAME_CLINIC = "clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid"
_BYPASS = "current_setting('app.rls_bypass', true) = 'on'"
# A user may list their own memberships before a clinic is chosen (the clinic switcher).
_OWN_MEMBERSHIP = "user_id = NULLIF(current_setting('app.user_id', true), '')::bigint"


def tenant_models():
    return [m for m in apps.get_models() if issubclass(m, TenantOwned) and not m._meta.proxy]


def _policy_sql(model) -> list[str]:
    table = model._meta.db_table
    visible = f"({_SAME_CLINIC}) OR ({_BYPASS})"
    if model is Membership:
        visible += f" OR ({_OWN_MEMBERSHIP})"
    return [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
        f'DROP POLICY IF EXISTS {POLICY} ON "{table}"',
        f'CREATE POLICY {POLICY} ON "{table}" USING ({visible}) WITH CHECK (({_SAME_CLINIC}) OR ({_BYPASS}))',
    ]


def apply_policies(using: str = "default") -> None:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for model in tenant_models():
            if model._meta.db_table in existing:
                for statement in _policy_sql(model):
                    cursor.execute(statement)


def tables_without_policy(using: str = "default") -> list[str]:
    """Every table with a clinic_id column that is not fully protected (for the check and tests)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'clinic_id' AND NOT a.attisdropped
            WHERE n.nspname = current_schema() AND c.relkind = 'r'
              AND (NOT c.relrowsecurity OR NOT c.relforcerowsecurity
                   OR NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = %s))
            ORDER BY 1
            """,
            [POLICY],
        )
        return [row[0] for row in cursor.fetchall()]


def on_post_migrate(sender, using="default", **kwargs):
    apply_policies(using)
