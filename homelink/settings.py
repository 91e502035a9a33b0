"""One settings file, driven by the environment (see .env.example).

SQLite in ``var/homelink.sqlite3`` and the database task backend by default, so a fresh clone runs
with nothing to install; ``DATABASE_URL`` selects PostgreSQL (or another SQLite file) in production.
"""

from __future__ import annotations

import json
import os
import tempfile
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("HOMELINK_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DEBUG", False)
# Development conveniences (a built-in key, cookies over plain http, the readable /outbox/) are on
# only when something asks for them: `homelink demo`, `make demo` and the tests set HOMELINK_DEV=1.
# A server whose environment forgot a setting therefore fails closed, never open.
HOMELINK_DEV = env_bool("HOMELINK_DEV", False)


DEVELOPMENT_SECRET_KEY = "homelink-insecure-development-key-change-me"  # noqa: S105


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY", "")
    if key:
        return key
    if DEBUG or HOMELINK_DEV:
        # A development key is only acceptable where nothing real is at stake; anywhere else a
        # missing key stops the process instead of weakening every hash.
        return DEVELOPMENT_SECRET_KEY
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Generate one with: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))' "
        "(HOMELINK_DEV=1 allows a built-in key, for development only)"
    )


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    # The admin behind the second factor (homelink/console/admin_site.py).
    "homelink.console.admin_config.OperatorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "anymail",
    "homelink.schools",
    "homelink.register",
    "homelink.mis",
    "homelink.audit",
    "homelink.accounts",
    "homelink.staff",
    "homelink.console",
    "homelink.messaging",
    "homelink.ratelimit",
    "homelink.registration",
    "homelink.privacy",
    "homelink.sync",
    "homelink.trusts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "homelink.headers.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "homelink.staff.middleware.StaffSessionMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "homelink.urls"
WSGI_APPLICATION = "homelink.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_default_db = f"sqlite:///{VAR_DIR / 'homelink.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", _default_db))}
if "DATABASE_URL" not in os.environ:
    # SQLite makes its file but not the folder, and var/ is not in a fresh clone.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so two writers queue on the busy
    # timeout instead of one failing with "database is locked" half-way through; WAL lets
    # readers (parents registering, the import planner) carry on while a writer commits.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests run on a file too, not Django's shared-cache memory database: that one locks whole
    # tables and ignores the busy timeout, so it cannot show how SQLite really behaves when
    # two parents link at the same moment.
    DATABASES["default"]["TEST"] = {
        # One per test process, so that two runs on one machine never share a file.
        "NAME": os.environ.get(
            "TEST_SQLITE_PATH",
            str(Path(tempfile.gettempdir()) / f"homelink-test-{os.getpid()}.sqlite3"),
        ),
    }
else:
    # Connections are kept open between requests (docs/deployment.md): opening one costs a
    # PostgreSQL backend process and its authentication, more than a whole parent's page.
    # dj_database_url.parse always sets CONN_MAX_AGE (to 0), so this is assigned, not defaulted.
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", "60"))
    # A kept connection that the server has closed (a restart, a failover) is replaced before a
    # request uses it, instead of failing that request.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ.get(
        "TEST_DATABASE_NAME", "homelink_test"
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TASKS = {
    "default": {
        "BACKEND": os.environ.get("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = os.environ.get("TIME_ZONE", "Europe/London")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG and not HOMELINK_DEV)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
# HTTPS is usually ended by a reverse proxy (docs/deployment.md): it says so in
# X-Forwarded-Proto, which is believed only when the operator says the proxy sets it.
if env_bool("HOMELINK_BEHIND_HTTPS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))

# The register is personal data: nothing below INFO, and no values in messages (see audit/).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Mail: SMTP when EMAIL_HOST is set (any ESP through Django's backends otherwise); without it,
# the local outbox keeps every message for people to read at /outbox/.
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("EMAIL_HOST")
    else "homelink.messaging.email_backend.OutboxEmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Seconds an SMTP connection waits for the server (Django's default waits for ever: a relay that
# stops answering would hold a worker until it is restarted).
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "30"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "homelink <noreply@example.org>")
# The domain of the Message-ID each message's email carries (how a bounce is matched to it).
HOMELINK_EMAIL_DOMAIN = os.environ.get("HOMELINK_EMAIL_DOMAIN", "homelink.invalid")
# The outbox's workers: deliveries per claim, how long a claim is held before another worker may
# take it over (the worker is presumed dead), and how many tasks a send wakes.
HOMELINK_DELIVERY_BATCH = int(os.environ.get("HOMELINK_DELIVERY_BATCH", "100"))
HOMELINK_DELIVERY_LEASE_SECONDS = int(os.environ.get("HOMELINK_DELIVERY_LEASE_SECONDS", "300"))
HOMELINK_DELIVERY_CONCURRENCY = int(os.environ.get("HOMELINK_DELIVERY_CONCURRENCY", "4"))
# Connections each worker keeps open to an SMS provider across the internet (Twilio, HTTP),
# each sending one message at a time: what hides the provider's round trip.
HOMELINK_SMS_CONNECTIONS = int(os.environ.get("HOMELINK_SMS_CONNECTIONS", "4"))


def _rate(name: str) -> float:
    raw = os.environ.get(name, "0")
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    # A rate that is not a number, infinite, negative or below one message a minute is a typo:
    # refuse to start rather than send unpaced, or one text a fortnight.
    if not (rate == 0 or 1 / 60 <= rate < 1e6):
        raise ImproperlyConfigured(
            f"{name} must be 0 (no pace) or messages per second from 1/60 up, not {raw!r}"
        )
    return rate


# Messages per second the SMS provider and the email provider take from this install, shared by
# every worker (messaging/pacing.py): the account's rate (Twilio: 1 per long code, more for short
# codes and messaging services). 0 sends as fast as the provider answers, slowing only when it
# says 429.
HOMELINK_SMS_RATE = _rate("HOMELINK_SMS_RATE")
HOMELINK_EMAIL_RATE = _rate("HOMELINK_EMAIL_RATE")
# SMS: the local outbox until a real gateway is configured: Twilio
# (homelink.messaging.gateways.twilio.TwilioGateway) or a generic HTTP provider
# (homelink.messaging.gateways.http.HttpGateway). See docs/deployment.md, "SMS gateways".
HOMELINK_SMS_GATEWAY = os.environ.get(
    "HOMELINK_SMS_GATEWAY", "homelink.messaging.gateways.outbox.OutboxGateway"
)
HOMELINK_TWILIO_ACCOUNT_SID = os.environ.get("HOMELINK_TWILIO_ACCOUNT_SID", "")
HOMELINK_TWILIO_AUTH_TOKEN = os.environ.get("HOMELINK_TWILIO_AUTH_TOKEN", "")
# A number (two-way SMS needs one), used when a message has no sender name of its own.
HOMELINK_TWILIO_FROM = os.environ.get("HOMELINK_TWILIO_FROM", "")
HOMELINK_TWILIO_MESSAGING_SERVICE_SID = os.environ.get("HOMELINK_TWILIO_MESSAGING_SERVICE_SID", "")
HOMELINK_TWILIO_API_URL = os.environ.get("HOMELINK_TWILIO_API_URL", "https://api.twilio.com")


def _json_setting(name: str) -> dict[str, Any]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object")
    return value


# The generic HTTP gateway: one JSON object (keys in homelink/messaging/gateways/http.py).
HOMELINK_HTTP_SMS = _json_setting("HOMELINK_HTTP_SMS")
# Email events (delivered, bounced…) from an ESP through django-anymail's webhooks at
# /hooks/anymail/<esp>/tracking/. Events are ignored until the basic-auth secret ("user:pass")
# is set. ANYMAIL (JSON) carries any other anymail setting: an ESP's API key for its email
# backend, its webhook signing key.
ANYMAIL = _json_setting("ANYMAIL")
if os.environ.get("ANYMAIL_WEBHOOK_SECRET"):
    ANYMAIL["WEBHOOK_SECRET"] = os.environ["ANYMAIL_WEBHOOK_SECRET"]
# The one ESP whose events are taken (anymail's name for it, "postmark"); by default the one
# EMAIL_BACKEND sends through. Every other provider's webhook address answers 404.
HOMELINK_EMAIL_EVENTS_ESP = os.environ.get("HOMELINK_EMAIL_EVENTS_ESP", "")
# The outbox page shows every kept message: only where nothing real is at stake.
HOMELINK_SHOW_OUTBOX = env_bool("HOMELINK_SHOW_OUTBOX", HOMELINK_DEV)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "account"
LOGOUT_REDIRECT_URL = "login"

# Reverse proxies whose X-Forwarded-For the rate limits believe (addresses or networks).
HOMELINK_TRUSTED_PROXIES = [
    p.strip() for p in os.environ.get("HOMELINK_TRUSTED_PROXIES", "").split(",") if p.strip()
]
# Security-code attempts per minute across the site before everyone is slowed (and operators told).
HOMELINK_CODE_BUDGET_PER_MINUTE = int(os.environ.get("HOMELINK_CODE_BUDGET_PER_MINUTE", "300"))
# Password attempts per minute across the site before everyone's are slowed (and operators told).
HOMELINK_LOGIN_BUDGET_PER_MINUTE = int(os.environ.get("HOMELINK_LOGIN_BUDGET_PER_MINUTE", "600"))
# Operators emailed when attempts go over the site-wide budget: "Name <email>, Name <email>".
ADMINS = [(name, addr) for name, addr in getaddresses([os.environ.get("ADMINS", "")]) if addr]

# Staff sessions end after this long idle, and this long after signing in, whatever happens.
HOMELINK_STAFF_IDLE_SECONDS = int(os.environ.get("HOMELINK_STAFF_IDLE_SECONDS", "1800"))
HOMELINK_STAFF_SESSION_SECONDS = int(os.environ.get("HOMELINK_STAFF_SESSION_SECONDS", "43200"))

# Where parents reach the site: printed on security letters. Also the address SMS providers
# call back: receipt URLs are built from it and Twilio's signatures are checked against it.
HOMELINK_PUBLIC_URL = os.environ.get("HOMELINK_PUBLIC_URL", "http://127.0.0.1:8000")

# Data protection: an adult from the MIS who has never been sent the school's privacy notice is
# sent it before the school's first message reaches them (homelink/privacy/notices.py). On
# unless "0"; the test suite turns it off and the tests of the notice turn it back on.
HOMELINK_FIRST_CONTACT_NOTICE = os.environ.get("HOMELINK_FIRST_CONTACT_NOTICE", "1") != "0"

# Imports: a whole-roll import that would mark more than this share of current students as left
# stops and asks for confirmation (the classic mistake is exporting one year group).
HOMELINK_LEAVER_GUARD = float(os.environ.get("HOMELINK_LEAVER_GUARD", "0.10"))
# An import lock older than this is taken to belong to a process that died.
HOMELINK_IMPORT_LOCK_SECONDS = int(os.environ.get("HOMELINK_IMPORT_LOCK_SECONDS", "7200"))
# The largest MIS file the console accepts (set the web server's body limit to match).
HOMELINK_IMPORT_MAX_BYTES = int(os.environ.get("HOMELINK_IMPORT_MAX_BYTES", str(200 * 1024 * 1024)))

# Scheduled MIS sync (homelink/sync/). OneRoster client secrets are stored encrypted with these
# Fernet keys (comma-separated, newest first: add a new key in front to rotate; generate one with
# `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).
# Unset in production, a OneRoster sync can be neither added nor run: secrets are never kept in
# the clear. The demo and the tests derive a key from the development SECRET_KEY.
HOMELINK_SYNC_KEYS = [
    k.strip() for k in os.environ.get("HOMELINK_SYNC_KEY", "").split(",") if k.strip()
]
# Drop folders an administrator may choose in the console: <root>/<URN>/ (the command line may
# name any folder: it is the server's operator who runs it).
HOMELINK_SYNC_ROOT = Path(os.environ.get("HOMELINK_SYNC_ROOT", VAR_DIR / "sync"))
# A sync that has not succeeded for this long shows red, and the school's administrators are
# emailed once.
HOMELINK_SYNC_STALE_HOURS = float(os.environ.get("HOMELINK_SYNC_STALE_HOURS", "36"))
# How often a worker looks for due syncs (and stale ones).
HOMELINK_SYNC_SWEEP_SECONDS = int(os.environ.get("HOMELINK_SYNC_SWEEP_SECONDS", "60"))
# A drop-folder file is taken once its size and time have not changed for this long.
HOMELINK_SYNC_SETTLE_SECONDS = float(os.environ.get("HOMELINK_SYNC_SETTLE_SECONDS", "5"))
# A OneRoster delta is fetched when the last full sync is younger than this; else a full one.
HOMELINK_SYNC_FULL_EVERY_DAYS = int(os.environ.get("HOMELINK_SYNC_FULL_EVERY_DAYS", "7"))
# OneRoster servers on http:// or at private, loopback or link-local addresses: only for the demo
# and the tests' fake server. In production the URL must be https:// to a public address.
HOMELINK_SYNC_ALLOW_PRIVATE = env_bool("HOMELINK_SYNC_ALLOW_PRIVATE", HOMELINK_DEV)

# Verification texts (a code to confirm a parent's mobile) go only to mobiles in these countries
# (ISO codes, "GB,IE"): the operators' choice, never a school's. Past the budget per minute every
# text is slowed and the operators (ADMINS) are emailed; past the day's cap none is sent.
HOMELINK_SMS_COUNTRIES = [
    code.strip().upper()
    for code in os.environ.get("HOMELINK_SMS_COUNTRIES", "GB").split(",")
    if code.strip()
]
HOMELINK_VERIFY_SMS_BUDGET_PER_MINUTE = int(
    os.environ.get("HOMELINK_VERIFY_SMS_BUDGET_PER_MINUTE", "30")
)
HOMELINK_VERIFY_SMS_PER_DAY = int(os.environ.get("HOMELINK_VERIFY_SMS_PER_DAY", "2000"))
# django-otp's own throttle doubles its wait after every wrong code without limit and refuses the
# right code meanwhile: anyone holding a stolen password could lock the owner out for days.
# homelink's limits (homelink/ratelimit/policies.py, OTP_*) replace it.
OTP_TOTP_THROTTLE_FACTOR = 0
