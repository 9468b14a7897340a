"""How cms keeps its users' sessions. The workshop loads this module into
cms.settings (its UPPERCASE names override cms's), on every node.

This is what the app had: Django's cache session engine over the cache Django uses
when CACHES is not set, LocMemCache: a dictionary inside each worker process. A user
logs in on one worker; the next request lands on another worker (or another node),
which has never heard of that session, and the user is logged out.
"""

import os

# The workshop's Valkey/Redis, shared by every node: redis://127.0.0.1:PORT/0
REDIS_URL = os.environ.get("REDIS_URL", "")

# TODO(step shared-cache): point the default cache at the shared Redis/Valkey: Django's
# built-in django.core.cache.backends.redis.RedisCache, with LOCATION = REDIS_URL.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# TODO(step cached-db): a cache can be flushed or evict keys, and a session kept only in
# the cache is then gone. Keep sessions in the database, and read them from the cache.
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
