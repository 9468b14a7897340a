"""A Celery client for checks and scenarios: sends cms's tasks by name to a cluster's
broker and reads their results, without importing cms or Django."""

from __future__ import annotations

from celery import Celery


def celery_client(redis_url: str) -> Celery:
    app = Celery("workshop-client", broker=redis_url, backend=redis_url)
    app.conf.update(broker_connection_retry_on_startup=True, result_expires=3600)
    return app
