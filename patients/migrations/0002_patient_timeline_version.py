"""Patient.timeline_version: raised by triggers on every row the clinician timeline shows.

The timeline page caches its rendered body under (patient, timeline_version). The writers are
many (web services, the analysis workers' claim/complete/fail/release, the sweeper, the admin,
data fixes in SQL) and several live in the analysis app, so the database raises the version in
the writing transaction itself: a writer cannot forget, and a reader that sees the new version
also sees the rows it stands for (read committed: each later statement sees what committed before).

Tracked tables and the column that leads to the patient:
visits, treatments (patient_id); photos, runs, grades, notes (visit_id); results and comparisons
(photo_id); note revisions (note_id). A run's lease renewal and message bookkeeping
(lease_expires_at, enqueued_at) change nothing on screen and do not count. Any update of the
patient row itself (baseline, name, a stale save() of an older copy) raises it too, and never
lowers it.
"""

from django.db import migrations, models

TRACKED = [
    # table, column that leads to the patient
    ("patients_visit", "patient_id"),
    ("patients_treatment", "patient_id"),
    ("patients_photo", "visit_id"),
    ("patients_severitygrade", "visit_id"),
    ("patients_clinicalnote", "visit_id"),
    ("patients_clinicalnoterevision", "note_id"),
    ("analysis_analysisrun", "visit_id"),
    ("analysis_photoresult", "photo_id"),
    ("analysis_photocomparison", "photo_id"),
]
# Bookkeeping columns of a run that the pages never show: a heartbeat must not empty the cache.
RUN_QUIET_COLUMNS = ["lease_expires_at", "enqueued_at"]

PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION patients_timeline_touch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    col text := TG_ARGV[0];
    ids uuid[] := ARRAY[]::uuid[];
BEGIN
    IF TG_OP <> 'INSERT' THEN ids := ids || (to_jsonb(OLD) ->> col)::uuid; END IF;
    IF TG_OP <> 'DELETE' THEN ids := ids || (to_jsonb(NEW) ->> col)::uuid; END IF;
    IF col = 'visit_id' THEN
        ids := ARRAY(SELECT patient_id FROM patients_visit WHERE id = ANY(ids));
    ELSIF col = 'photo_id' THEN
        ids := ARRAY(SELECT v.patient_id FROM patients_photo p JOIN patients_visit v ON v.id = p.visit_id
                     WHERE p.id = ANY(ids));
    ELSIF col = 'note_id' THEN
        ids := ARRAY(SELECT v.patient_id FROM patients_clinicalnote n JOIN patients_visit v ON v.id = n.visit_id
                     WHERE n.id = ANY(ids));
    ELSIF col <> 'patient_id' THEN
        RAISE EXCEPTION USING MESSAGE = 'patients_timeline_touch: unknown column ' || col;
    END IF;
    UPDATE patients_patient SET timeline_version = timeline_version + 1 WHERE id = ANY(ids);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION patients_patient_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.timeline_version <= OLD.timeline_version THEN
        NEW.timeline_version := OLD.timeline_version + 1;
    END IF;
    RETURN NEW;
END $$;
"""


def _pg_triggers() -> list[str]:
    statements = [PG_FUNCTIONS]
    for table, column in TRACKED:
        when = ""
        if table == "analysis_analysisrun":
            quiet = " ".join(f"- '{c}'" for c in RUN_QUIET_COLUMNS)
            statements.append(
                f"CREATE TRIGGER patients_timeline_touch_upd AFTER UPDATE ON {table} FOR EACH ROW "
                f"WHEN ((to_jsonb(OLD) {quiet}) IS DISTINCT FROM (to_jsonb(NEW) {quiet})) "
                f"EXECUTE FUNCTION patients_timeline_touch('{column}')")
            when = " OR DELETE"
        else:
            when = " OR UPDATE OR DELETE"
        statements.append(
            f"CREATE TRIGGER patients_timeline_touch AFTER INSERT{when} ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION patients_timeline_touch('{column}')")
    statements.append("CREATE TRIGGER patients_timeline_version BEFORE UPDATE ON patients_patient FOR EACH ROW "
                      "EXECUTE FUNCTION patients_patient_version()")
    return statements


def _pg_drop() -> list[str]:
    statements = [f"DROP TRIGGER IF EXISTS {name} ON {table}" for table, _ in TRACKED
                  for name in ("patients_timeline_touch", "patients_timeline_touch_upd")]
    return statements + ["DROP TRIGGER IF EXISTS patients_timeline_version ON patients_patient",
                         "DROP FUNCTION IF EXISTS patients_timeline_touch()",
                         "DROP FUNCTION IF EXISTS patients_patient_version()"]


def _sqlite_patients_of(row: str, column: str) -> str:
    if column == "patient_id":
        return f"SELECT {row}.patient_id"
    if column == "visit_id":
        return f"SELECT patient_id FROM patients_visit WHERE id = {row}.visit_id"
    parent = {"photo_id": "patients_photo", "note_id": "patients_clinicalnote"}[column]
    return (f"SELECT v.patient_id FROM {parent} x JOIN patients_visit v ON v.id = x.visit_id "
            f"WHERE x.id = {row}.{column}")


def _sqlite_triggers() -> list[str]:
    # SQLite (the single-process demo) has no row-to-JSON: a run's heartbeat raises the version too.
    statements = []
    for table, column in TRACKED:
        for op, rows in (("INSERT", ["NEW"]), ("UPDATE", ["OLD", "NEW"]), ("DELETE", ["OLD"])):
            patients = " UNION ".join(_sqlite_patients_of(row, column) for row in rows)
            statements.append(
                f"CREATE TRIGGER patients_timeline_touch_{table}_{op.lower()} AFTER {op} ON {table} BEGIN "
                f"UPDATE patients_patient SET timeline_version = timeline_version + 1 WHERE id IN ({patients}); END")
    statements.append(
        "CREATE TRIGGER patients_timeline_version AFTER UPDATE ON patients_patient "
        "WHEN NEW.timeline_version <= OLD.timeline_version BEGIN "
        "UPDATE patients_patient SET timeline_version = OLD.timeline_version + 1 WHERE id = NEW.id; END")
    return statements


def _sqlite_drop() -> list[str]:
    return [f"DROP TRIGGER IF EXISTS patients_timeline_touch_{table}_{op}" for table, _ in TRACKED
            for op in ("insert", "update", "delete")] + ["DROP TRIGGER IF EXISTS patients_timeline_version"]


def _run(apps, schema_editor, *, create: bool):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        statements = _pg_triggers() if create else _pg_drop()
    elif vendor == "sqlite":
        statements = _sqlite_triggers() if create else _sqlite_drop()
    else:
        raise RuntimeError(f"timeline version triggers are written for PostgreSQL and SQLite, not {vendor}")
    for statement in statements:
        schema_editor.execute(statement)


def create_triggers(apps, schema_editor):
    _run(apps, schema_editor, create=True)


def drop_triggers(apps, schema_editor):
    _run(apps, schema_editor, create=False)


class Migration(migrations.Migration):

    dependencies = [
        ("patients", "0001_initial"),
        ("analysis", "0002_run_claim"),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="timeline_version",
            field=models.BigIntegerField(db_default=0, default=0, editable=False),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
