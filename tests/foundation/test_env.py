import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from clinic.env import env_bool, env_int, parse_broker_url, parse_database_url


def test_it_reads_postgres_urls():
    db = parse_database_url("postgres://app:s%40cret@db.internal:6543/tricho?sslmode=require")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "app", "s@cret", "db.internal", "6543", "tricho")
    assert db["OPTIONS"] == {"sslmode": "require"}


def test_it_reads_absolute_and_relative_sqlite_paths():
    assert parse_database_url("sqlite:////var/lib/tt/db.sqlite3")["NAME"] == "/var/lib/tt/db.sqlite3"
    assert parse_database_url("sqlite:///data/db.sqlite3")["NAME"] == "data/db.sqlite3"


@pytest.mark.parametrize("url", ["mysql://x@y/z", "postgres://host-only", "sqlite:///"])
def test_it_refuses_bad_database_urls(url):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        parse_database_url(url)


def test_it_accepts_the_three_broker_kinds_and_nothing_else():
    for url in ["embedded", "redis://localhost:6379/0", "amqp://guest:guest@localhost:5672/"]:
        assert parse_broker_url(url) == url
    with pytest.raises(ImproperlyConfigured, match="BROKER_URL"):
        parse_broker_url("kafka://nope")


def test_booleans_and_integers_fail_loudly(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        env_bool("DEBUG")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "40MB")
    with pytest.raises(ImproperlyConfigured, match="MAX_UPLOAD_BYTES"):
        env_int("MAX_UPLOAD_BYTES", 1)


def test_production_mode_requires_a_secret_key(tmp_path):
    env = {"TRICHOTRACK_PRODUCTION": "1", "TRICHOTRACK_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", "import clinic.settings"], env=env, capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_the_demo_generates_and_keeps_its_secret_key(tmp_path):
    env = {"TRICHOTRACK_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = "import clinic.settings as s; print(s.SECRET_KEY)"
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert len(first.stdout.strip()) > 40
    assert first.stdout == second.stdout
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
