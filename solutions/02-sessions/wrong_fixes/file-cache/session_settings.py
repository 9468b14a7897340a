"""Wrong fix: a file cache in /tmp, which every node of one laptop happens to share."""

import os

REDIS_URL = os.environ.get("REDIS_URL", "")

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": "/tmp/cms-sessions-cache"}
}

SESSION_ENGINE = "django.contrib.sessions.backends.cache"
