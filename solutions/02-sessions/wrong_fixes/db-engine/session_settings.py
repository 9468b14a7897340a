"""Wrong fix: sessions in the database only, no cache in front."""

import os

REDIS_URL = os.environ.get("REDIS_URL", "")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

SESSION_ENGINE = "django.contrib.sessions.backends.db"
