"""Probes and the X-Served-By header."""

import os
from unittest import mock

from django.contrib.sessions.models import Session
from django.db import OperationalError, connections


def test_live(client):
    response = client.get("/healthz/live")
    assert response.status_code == 200
    assert response.content == b"ok"


def test_ready_touches_no_session(db, client):
    sessions_before = Session.objects.count()
    response = client.get("/healthz/ready")
    assert response.status_code == 200
    assert response.content == b"ready"
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")
    assert Session.objects.count() == sessions_before


def test_ready_is_503_without_database(db, client):
    with mock.patch.object(connections["default"], "cursor", side_effect=OperationalError("down")):
        response = client.get("/healthz/ready")
    assert response.status_code == 503


def test_probes_answer_head_but_not_post(client):
    assert client.head("/healthz/live").status_code == 200
    assert client.post("/healthz/live").status_code == 405


def test_every_response_says_who_served_it(db, client):
    expected = f"test-node/{os.getpid()}"
    assert client.get("/healthz/live")["X-Served-By"] == expected
    assert client.get("/login/")["X-Served-By"] == expected
    assert client.get("/no/such/page/")["X-Served-By"] == expected
