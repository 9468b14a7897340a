"""Wrong fix: sessions in signed cookies: nothing on the server."""

import os

REDIS_URL = os.environ.get("REDIS_URL", "")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
