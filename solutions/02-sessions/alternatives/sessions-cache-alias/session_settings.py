"""Right fix by another route: cached_db over a Redis cache of its own, picked by SESSION_CACHE_ALIAS."""

import os

REDIS_URL = os.environ.get("REDIS_URL", "")

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sessions": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
}
SESSION_CACHE_ALIAS = "sessions"

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
