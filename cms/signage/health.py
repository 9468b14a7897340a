"""Probes for the load balancer and the workshop's checks.

They need no login and leave no trace: no audit entry, and they never touch the session
(so they set no cookie and write no session row).
"""

import logging
import math
import time

from django.db import DatabaseError, connections
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def live(request):
    """The process answers: no database involved."""
    return HttpResponse("ok", content_type="text/plain")


@never_cache
@require_safe
def ready(request):
    """The process can serve: the database answers a ``SELECT 1``."""
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("not ready: database unavailable: %s", exc)
        return HttpResponse("not ready: database unavailable", status=503, content_type="text/plain")
    return HttpResponse("ready", content_type="text/plain")


SLOW_CAP_SECONDS = 30.0


@never_cache
@require_safe
def slow(request):
    """A request that takes ``?seconds=N`` (at most 30): the slow request a rollout must
    let finish (lab 05). No database, no session, no login."""
    try:
        seconds = float(request.GET.get("seconds", "1"))
    except ValueError:
        seconds = float("nan")
    if math.isnan(seconds):
        return HttpResponse("seconds must be a number", status=400, content_type="text/plain")
    seconds = min(max(seconds, 0.0), SLOW_CAP_SECONDS)
    logger.info("slow request started: %g s", seconds)  # a check waits for this line
    time.sleep(seconds)
    return HttpResponse(f"slept {seconds:g} s", content_type="text/plain")
