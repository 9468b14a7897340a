"""Wrong fix: step 2 only: the cache engine over the shared Redis (the cache is the only copy)."""

import os

REDIS_URL = os.environ.get("REDIS_URL", "")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

SESSION_ENGINE = "django.contrib.sessions.backends.cache"
