"""WSGI entry point of the CMS (``cms.wsgi:application``), served by uWSGI on every node.

``CMS_WARMUP_SECONDS`` (default 0: none) makes the app warm up for that long after it
loaded, as a real one does while it connects, fills caches or waits for migrations: its
socket is open, but every request except the liveness probe ``/healthz/live`` answers 503.
Lab 05 sets it, so that only a readiness probe through the app proves a pod can serve.
"""

import os
import time

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms.settings")

application = get_wsgi_application()


class WarmingUp:
    """503 to everything but the liveness probe until `seconds` after the app loaded."""

    def __init__(self, app, seconds: float):
        self.app = app
        self.ready_at = time.monotonic() + seconds  # CLOCK_MONOTONIC: the same in forked workers

    def __call__(self, environ, start_response):
        if time.monotonic() < self.ready_at and environ.get("PATH_INFO") != "/healthz/live":
            from cms.signage.middleware import served_by

            headers = [("Content-Type", "text/plain"), ("Retry-After", "1"), ("X-Served-By", served_by())]
            start_response("503 Service Unavailable", headers)
            return [b"warming up\n"]
        return self.app(environ, start_response)


WARMUP_SECONDS = float(os.environ.get("CMS_WARMUP_SECONDS") or 0)
if WARMUP_SECONDS > 0:
    application = WarmingUp(application, WARMUP_SECONDS)
