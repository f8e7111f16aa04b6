"""EcoLink settings: one module, driven by environment variables with safe local defaults.

With nothing set, the platform runs on its embedded default (SQLite, a filesystem broker,
local artifacts, the local CPU pod backend). `ECOLINK_ENV=production` turns on the strict
checks: a missing secret fails at import, not at the first request.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = os.environ.get("ECOLINK_ENV", "development")
PRODUCTION = ENV == "production"


def env(name: str, default: str | None = None, *, required_in_production: bool = False) -> str:
    value = os.environ.get(name)
    if value:
        return value
    if PRODUCTION and required_in_production:
        raise ImproperlyConfigured(f"{name} must be set when ECOLINK_ENV=production")
    return default or ""


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Where the embedded default keeps its state: the SQLite file, the broker folders,
# artifacts and the tiny model. Ignored by git.
VAR_DIR = Path(env("ECOLINK_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env(
    "SECRET_KEY", "django-insecure-local-development-key-do-not-use", required_in_production=True
)
DEBUG = env_bool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver,[::1]"
)
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when ECOLINK_ENV=production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "ecolink.accounts",
    "ecolink.catalog",
    "ecolink.billing",
    "ecolink.datasets",
    "ecolink.finetune",
    "ecolink.registry",
    "ecolink.api",
    "ecolink.ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "ecolink.api.middleware.FileUploadLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

if env("ECOLINK_QUERY_COUNT"):  # `make bench-web` counts SQL statements per request
    MIDDLEWARE.insert(0, "ecolink.querycount.QueryCountMiddleware")

if PRODUCTION:
    # Serves the collected static files; locally `runserver` and the test server do it.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "ecolink.urls"
WSGI_APPLICATION = "ecolink.wsgi.application"
ASGI_APPLICATION = "ecolink.asgi.application"

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
                "ecolink.accounts.context_processors.organization",
                "ecolink.accounts.context_processors.navigation",
            ],
        },
    },
]

# --- Database: PostgreSQL when DATABASE_URL is set, a SQLite file otherwise.
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes (web, worker, beat) share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # SQLite creates the file but not its folder: a fresh VAR_DIR must exist first.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: the broker and the cache when REDIS_URL is set; no server needed otherwise.
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Celery. Money moves in tasks, so a task is acknowledged only after it ran and is
# redelivered if its worker dies; every task is written to be safe to run twice.
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# One beat process: the meter and the reconciler are safe to run twice, but need not be.
CELERY_BEAT_SCHEDULE = {
    "meter-tick": {
        "task": "billing.meter_tick",
        "schedule": float(env("ECOLINK_METER_TICK_SECONDS", "10")),
    },
    "reconcile-jobs": {
        "task": "finetune.reconcile",
        "schedule": float(env("ECOLINK_RECONCILE_SECONDS", "5")),
    },
    "retention": {"task": "finetune.retention", "schedule": 3600.0},
}
if REDIS_URL:
    # Above the longest task time limit, so an acked-late task is not redelivered while it runs.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, int | str | bool] = {
        "visibility_timeout": int(env("ECOLINK_REDIS_VISIBILITY_TIMEOUT", "3600")),
        # How often a worker looks for unacknowledged messages past the timeout, to
        # redeliver the tasks of a worker that died (about interval × throttle seconds).
        "unacked_restore_interval": int(env("ECOLINK_REDIS_RESTORE_INTERVAL", "10")),
        "unacked_restore_throttle": int(env("ECOLINK_REDIS_RESTORE_THROTTLE", "10")),
    }
else:
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast (pidbox) tables; kombu's default is ./control in the working folder.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    # The filesystem transport expects its folders to exist before the first message,
    # in whichever process (web, worker, beat) sends it.
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)

# --- Auth
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files: project CSS/JS plus the front-end packages from package.json.
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor", BASE_DIR / "node_modules")]
# Artifact storage (uploads, normalised datasets, checkpoints, adapters): a local folder by
# default, an S3-compatible bucket when ECOLINK_S3_BUCKET is set.
ARTIFACTS_DIR = Path(env("ECOLINK_ARTIFACTS_DIR", str(VAR_DIR / "artifacts")))
S3_BUCKET = env("ECOLINK_S3_BUCKET")
STORAGES: dict[str, dict[str, Any]] = {
    "default": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": S3_BUCKET,
                "endpoint_url": env("ECOLINK_S3_ENDPOINT_URL") or None,
                "access_key": env("ECOLINK_S3_ACCESS_KEY_ID") or None,
                "secret_key": env("ECOLINK_S3_SECRET_ACCESS_KEY") or None,
                "region_name": env("ECOLINK_S3_REGION") or None,
                "file_overwrite": False,
            },
        }
        if S3_BUCKET
        else {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(ARTIFACTS_DIR)},
        }
    ),
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- EcoLink
# Where the tiny local base model lives; `manage.py make_tiny_model` builds it there.
TINY_MODEL_DIR = Path(env("ECOLINK_TINY_MODEL_DIR", str(VAR_DIR / "models" / "tiny-qwen2")))
# Uploads larger than this are refused while streaming, before the body is buffered.
DATASET_MAX_UPLOAD_BYTES = int(env("ECOLINK_DATASET_MAX_UPLOAD_BYTES", str(512 * 1024 * 1024)))
# Uploaded files stream to disk past this size instead of staying in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Money is integer micro-dollars everywhere (1 USD = 1_000_000).
SIGNUP_CREDIT_MICROS = int(env("ECOLINK_SIGNUP_CREDIT_MICROS", "5000000"))  # $5 to start
DEMO_BALANCE_MICROS = int(env("ECOLINK_DEMO_BALANCE_MICROS", "25000000"))  # $25 for the demo
CURRENCY = "usd"
# Stripe. Without keys (the embedded default) /billing offers a clearly labelled test-mode
# top-up that credits directly; production refuses it.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET")
# Stripe's API address; tests point it at a fake server on loopback.
STRIPE_API_BASE = env("STRIPE_API_BASE", "https://api.stripe.com")
# A webhook signed longer ago than this is refused (a replay) ...
STRIPE_WEBHOOK_TOLERANCE_SECONDS = int(env("STRIPE_WEBHOOK_TOLERANCE_SECONDS", "300"))
# ... and so is one signed further in the future than clocks plausibly drift.
STRIPE_WEBHOOK_CLOCK_SKEW_SECONDS = int(env("STRIPE_WEBHOOK_CLOCK_SKEW_SECONDS", "60"))
TEST_MODE_TOPUP = not STRIPE_SECRET_KEY and not PRODUCTION
TOPUP_MIN_CENTS = 500  # $5 per Stripe top-up
TOPUP_MAX_CENTS = 100_000  # $1,000 per top-up
# --- Training pods
POD_BACKEND = env("ECOLINK_POD_BACKEND", "local")
LOCAL_PODS_DIR = VAR_DIR / "pods"
# How pods reach the platform to report progress (the events endpoint).
INTERNAL_BASE_URL = env("ECOLINK_INTERNAL_URL", "http://127.0.0.1:8000")
# Time a pod gets after SIGTERM to checkpoint before it is killed.
POD_STOP_GRACE_SECONDS = int(env("ECOLINK_POD_STOP_GRACE_SECONDS", "120"))
# An evicted job with a complete checkpoint is retried this often, free of charge.
MAX_AUTOMATIC_RETRIES = 3
# The most GPUs one job may use, whatever its GPU type allows (the catalog's max_count).
MAX_GPUS_PER_JOB = int(env("ECOLINK_MAX_GPUS_PER_JOB", "8"))
# How long a cancelled job's last adapter or checkpoint is kept unless promoted.
RETENTION_DAYS = 30
# Length of a billing minute in seconds. Production bills real minutes; tests shorten it so
# that metering, auto-pause and settlement run in seconds.
BILLING_MINUTE_SECONDS = int(env("ECOLINK_BILLING_MINUTE_SECONDS", "60"))

# --- Security: strict in production, relaxed for the local default.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = 31536000 if PRODUCTION else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}

# --- Datasets
# One JSONL line or CSV row longer than this is an error, read past without being kept.
DATASET_MAX_LINE_BYTES = int(env("ECOLINK_DATASET_MAX_LINE_BYTES", str(8 * 1024 * 1024)))
# A Parquet file may decode to at most this many bytes, and at most this many times its
# size on disk (above 64 MB): the defence against decompression bombs.
DATASET_MAX_DECODED_BYTES = int(env("ECOLINK_DATASET_MAX_DECODED_BYTES", str(2 * 1024**3)))
DATASET_MAX_DECODE_RATIO = int(env("ECOLINK_DATASET_MAX_DECODE_RATIO", "100"))
if S3_BUCKET:
    # django-storages reads an S3 object into a SpooledTemporaryFile that, by default,
    # never rolls over to disk: keep validation's memory flat for large datasets.
    STORAGES["default"]["OPTIONS"]["max_memory_size"] = FILE_UPLOAD_MAX_MEMORY_SIZE
