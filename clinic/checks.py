from django.core.checks import Error, Tags, register
from django.db import connection


@register(Tags.database, deploy=True)
def check_row_level_security(app_configs=None, databases=None, **kwargs):
    """`manage.py check --database default` fails if a tenant table lacks its policy."""
    if not databases or "default" not in databases or connection.vendor != "postgresql":
        return []
    from clinic.rls import tables_without_policy

    return [
        Error(f"table {table} has a clinic_id but no forced row-level-security policy", id="clinic.E001")
        for table in tables_without_policy()
    ]
