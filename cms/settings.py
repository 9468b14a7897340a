"""Settings of the CMS: everything comes from the environment (12-factor), with lab defaults.

Every node of the workshop runs the same code with its own environment; nothing here may
depend on which machine it is imported on, except through the variables read below.
"""

import importlib
import os
import socket
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

# Where this installation keeps its files when no server is configured for them.
CMS_DATA_DIR = Path(os.environ.get("CMS_DATA_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("SECRET_KEY", "workshop-insecure-lab-default-change-me")

DEBUG = os.environ.get("DEBUG", "0") == "1"

# "*" because the nodes sit behind the workshop load balancer and are also probed by
# address. A real deployment narrows it (ALLOWED_HOSTS="cms.example.com"), but whatever
# probes a pod by its address must stay allowed: the kubelet's httpGet probes and an AWS
# ALB's health checks send the pod's IP as Host, and an ALB health check has no setting
# for a Host header (its settings: protocol, port, path, timeouts, thresholds, matcher).
# Narrowed to the domain alone, every target turns unhealthy. Add the pod's own IP from
# the downward API: env POD_IP from fieldRef status.podIP, and
# ALLOWED_HOSTS="cms.example.com,$(POD_IP)" (Django ignores the port when it compares).
ALLOWED_HOSTS = [host for host in os.environ.get("ALLOWED_HOSTS", "*").split(",") if host]

# Needed only when the load balancer's public origin differs from the Host it forwards.
CSRF_TRUSTED_ORIGINS = [origin for origin in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if origin]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "cms.signage",
]

MIDDLEWARE = [
    # First, so that it also marks responses made by the middleware below it.
    "cms.signage.middleware.ServedByMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Measures what the session engine costs the database (lab 02): X-Session-DB-Queries.
    "cms.signage.middleware.SessionQueryCountMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "cms.urls"

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
                "cms.signage.middleware.served_by_context",
            ],
        },
    },
]

WSGI_APPLICATION = "cms.wsgi.application"

# The database server. Without DATABASE_URL, one SQLite file stands in for it: the
# workshop's uWSGI processes on every node share that file.
DATABASES = {"default": dj_database_url.config(default=f"sqlite:///{CMS_DATA_DIR / 'cms.sqlite3'}", conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # Many writers share the file: wait for the lock instead of failing at once,
            # let readers work during a write (WAL), and take the write lock when a
            # transaction begins, so two transactions never deadlock upgrading their locks.
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )
    # SQLite does not create missing folders; a fresh checkout can then migrate at once.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)

# Django's default hasher (PBKDF2-SHA256, 1,000,000 iterations in Django 5.2) spends about
# half a second of CPU on every login, by design. The workshop's harness logs its seeded demo
# users in hundreds of times per test run and sets CMS_FAST_PASSWORD_HASHER=1, as Django's
# testing docs advise ("Password hashing"); a deployment leaves it unset.
if os.environ.get("CMS_FAST_PASSWORD_HASHER") == "1":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = CMS_DATA_DIR / "static"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# This node: its name (shown in X-Served-By and in logs) and its LOCAL disk. Whatever the
# app keeps under CMS_NODE_DIR, the other nodes cannot see. Created when first written to.
CMS_NODE_NAME = os.environ.get("CMS_NODE_NAME", socket.gethostname())
CMS_NODE_DIR = Path(os.environ.get("CMS_NODE_DIR", CMS_DATA_DIR / "node"))

# Celery. Without REDIS_URL the broker and the result store are in-process memory: enough
# for the CMS and its tests, but no worker in another process ever receives those tasks.
REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
else:
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
CELERY_TIMEZONE = TIME_ZONE

# The partner CRM (a Zoho-like vendor API; the workshop runs a fake one).
CRM_URL = os.environ.get("CRM_URL", "http://127.0.0.1:8089")
CRM_CLIENT_ID = os.environ.get("CRM_CLIENT_ID", "workshop-client")
CRM_CLIENT_SECRET = os.environ.get("CRM_CLIENT_SECRET", "workshop-secret")
CRM_REFRESH_TOKEN = os.environ.get("CRM_REFRESH_TOKEN", "workshop-refresh-token")

# Where the audit trail and the CRM's OAuth token are kept is what the first lab changes.
# The classes live in plain top-level modules of the lab's folder (labs/01-stateful/ or
# solutions/01-stateful/), which the workshop puts on sys.path (PYTHONPATH).
CMS_AUDIT_SINK = os.environ.get("CMS_AUDIT_SINK", "audit_sink.AuditSink")
CMS_CRM_TOKEN_STORE = os.environ.get("CMS_CRM_TOKEN_STORE", "crm_token_store.TokenStore")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "node": {
            "format": f"%(asctime)s %(levelname)s [{CMS_NODE_NAME}/%(process)d] %(name)s: %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "node",
        },
    },
    "root": {"handlers": ["console"], "level": "INFO"},
    # Replaces Django's own handlers for its loggers, so each line is printed once.
    "loggers": {"django": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}

# Comma-separated names of settings modules to layer over this one, in order.
CMS_SETTINGS_LAYERS = [n for n in os.environ.get("CMS_SETTINGS_LAYERS", "").split(",") if n]

# Later labs contribute settings modules from their folders on sys.path
# (see workshop/layers.py); a missing one means "this lab is not on the path yet".
for _module_name in CMS_SETTINGS_LAYERS:
    try:
        _layer = importlib.import_module(_module_name)
    except ModuleNotFoundError as exc:
        if exc.name == _module_name:
            continue
        raise
    globals().update({name: value for name, value in vars(_layer).items() if name.isupper()})
