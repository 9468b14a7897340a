"""Wrong fix: cached_db, with the default cache still LocMemCache (one per process)."""

import os

REDIS_URL = os.environ.get("REDIS_URL", "")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
