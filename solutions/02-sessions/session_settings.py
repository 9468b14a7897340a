"""How cms keeps its users' sessions. The workshop loads this module into
cms.settings (its UPPERCASE names override cms's), on every node.

Solution: every node shares one cache (Valkey/Redis), and sessions are written to
the database and cached: reads come from the cache, and when the cache has lost a
session (a flush, an eviction, a failover) it is read back from the database.
"""

import os

# The workshop's Valkey/Redis, shared by every node: redis://127.0.0.1:PORT/0
REDIS_URL = os.environ.get("REDIS_URL", "")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
