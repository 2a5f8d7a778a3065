"""Typed readers for settings that come from the environment.

Each helper raises ImproperlyConfigured with the variable's name when the value is
malformed, so a typo in production fails at start-up instead of at the first request.
"""

import os
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def parse_database_url(url: str) -> dict:
    """Turn postgres://user:pass@host:port/name or sqlite:///path into a DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if url.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
        elif path.startswith("/"):
            path = path[1:]
        if not path:
            raise ImproperlyConfigured("DATABASE_URL sqlite:/// needs a file path")
        # IMMEDIATE takes the write lock at BEGIN, so concurrent requests wait (up to `timeout`)
        # instead of failing with "database is locked" when a read turns into a write.
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path,
                "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20}}
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        name = parsed.path.lstrip("/")
        if not name:
            raise ImproperlyConfigured("DATABASE_URL must name a database, e.g. postgres://u@host/db")
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(name),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {parsed.scheme!r} is not supported; use postgres:// or sqlite:///"
    )


BROKER_SCHEMES = {"embedded", "redis", "rediss", "amqp", "amqps"}


def parse_broker_url(url: str) -> str:
    scheme = urlparse(url).scheme or url
    if scheme not in BROKER_SCHEMES:
        raise ImproperlyConfigured(
            f"BROKER_URL scheme {scheme!r} is not supported; use embedded, redis:// or amqp://"
        )
    return url
