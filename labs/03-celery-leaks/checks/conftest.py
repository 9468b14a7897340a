"""The fixtures of lab 03's checks: a fresh worker for each check, a Celery client, and the
task events. Each check module runs in a pytest (and a cluster) of its own, side by side."""

import pytest

from workshop.celery_client import celery_client
from workshop.scenarios.celery_workers import TaskEvents, discard_worker, start_worker


@pytest.fixture
def worker(cluster):
    """A fresh worker for each check, with the Procfile's command line; killed afterwards,
    with whatever it left in the broker."""
    process = start_worker(cluster)
    yield process
    discard_worker(cluster)


@pytest.fixture
def app(cluster):
    return celery_client(cluster.redis.url)


@pytest.fixture
def events(app, worker):
    with TaskEvents(app) as watching:
        yield watching
