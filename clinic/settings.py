"""Trichotrack settings.

Everything a deployment changes comes from the environment (see README "Production").
With nothing set, the platform runs on embedded defaults: SQLite and files under ./data,
and the analysis worker inside the web process.
"""

import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from clinic.env import env_bool, env_int, env_list, env_str, parse_broker_url, parse_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("TRICHOTRACK_DATA_DIR", str(BASE_DIR / "data")))

PRODUCTION = env_bool("TRICHOTRACK_PRODUCTION", False)
DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when TRICHOTRACK_PRODUCTION is on")
    # Demo: generate once and keep it, so sessions survive a restart.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "clinic",
    "patients",
    "analysis",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it wraps the view in the transaction that carries the tenant setting.
    "clinic.middleware.TenantMiddleware",
]

ROOT_URLCONF = "clinic.urls"
WSGI_APPLICATION = "clinic.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "clinic.context_processors.current_clinic",
            ],
        },
    },
]

DATABASES = {
    "default": parse_database_url(env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'trichotrack.sqlite3'}"))
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Keep connections between requests: a new one costs about 6 ms of server CPU (connecting,
    # then loading each table's metadata and row-level-security policies), which was most of a
    # cached timeline page. Safe for tenancy: the clinic is set with set_config(..., true), so
    # it ends with each request's transaction and never carries over to the next request.
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if env_str("TEST_DATABASE_NAME"):  # lets several test runs share one PostgreSQL server
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "static")))

# Photos are private: there is no MEDIA_URL route; files are served by authorising views only.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
S3_BUCKET = env_str("S3_BUCKET")
if S3_BUCKET:
    _s3_options = {
        "bucket_name": S3_BUCKET,
        "endpoint_url": env_str("S3_ENDPOINT_URL"),
        "region_name": env_str("S3_REGION"),
        "access_key": env_str("S3_ACCESS_KEY_ID"),
        "secret_key": env_str("S3_SECRET_ACCESS_KEY"),
        "default_acl": "private",
        "querystring_auth": True,
        "file_overwrite": False,
    }
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _s3_options}
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": None, "file_permissions_mode": 0o600},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Uploads: a scalp photo is at most 40 MB and 60 megapixels (decompression-bomb guard).
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 40 * 1024 * 1024)
MAX_UPLOAD_PIXELS = env_int("MAX_UPLOAD_PIXELS", 60_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Analysis queue: "embedded" runs the dramatiq actors in-process (demo); redis:// or amqp:// in production.
BROKER_URL = parse_broker_url(env_str("BROKER_URL", "embedded"))
# Analysis workers (docs/WORKERS.md). The web sends to ANALYSIS_QUEUE: "analysis" (CPU workers)
# or "analysis-gpu" once GPU workers run; both queues always have an actor.
ANALYSIS_QUEUE = env_str("ANALYSIS_QUEUE", "analysis")
if ANALYSIS_QUEUE not in {"analysis", "analysis-gpu"}:
    raise ImproperlyConfigured(f"ANALYSIS_QUEUE must be analysis or analysis-gpu, not {ANALYSIS_QUEUE!r}")
ANALYSIS_TIME_LIMIT_S = env_int("ANALYSIS_TIME_LIMIT_S", 300)
# A worker renews its claim every third of this; a killed worker's runs are taken over after it.
ANALYSIS_LEASE_S = env_int("ANALYSIS_LEASE_S", 60)
ANALYSIS_MAX_RETRIES = env_int("ANALYSIS_MAX_RETRIES", 5)
ANALYSIS_MIN_BACKOFF_MS = env_int("ANALYSIS_MIN_BACKOFF_MS", 2000)
ANALYSIS_MAX_BACKOFF_MS = env_int("ANALYSIS_MAX_BACKOFF_MS", 300_000)
ANALYSIS_BATCH_SIZE = env_int("ANALYSIS_BATCH_SIZE", 16)  # images per forward pass on a GPU worker
# Threads of one worker process share forward passes: "auto" on CUDA; "on" forces it (tests on CPU).
ANALYSIS_SHARED_BATCHING = env_str("ANALYSIS_SHARED_BATCHING", "auto")
ANALYSIS_DEVICE = env_str("ANALYSIS_DEVICE", "")  # "", "cpu", "cuda", "cuda:1"; empty: CUDA when present
WORKER_THREADS = env_int("WORKER_THREADS", 1)
WORKER_PROCESSES = env_int("WORKER_PROCESSES", 1)
ANALYSIS_TORCH_THREADS = env_int("ANALYSIS_TORCH_THREADS", 0)  # 0: cores ÷ (processes × threads)
# A Redis worker that misses heartbeats this long is dead and its messages are redelivered.
BROKER_HEARTBEAT_TIMEOUT_MS = env_int("BROKER_HEARTBEAT_TIMEOUT_MS", 60_000)
BROKER_MAINTENANCE_CHANCE = env_int("BROKER_MAINTENANCE_CHANCE", 1000)  # per million Redis commands

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "trichotrack@localhost")

# Sessions are read on every request: keep them in the process cache, written through to the database.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
