"""Probes and the X-Served-By header."""

import os
from unittest import mock

from django.contrib.sessions.models import Session
from django.db import OperationalError, connections
from django.test import Client


def test_live():
    response = Client().get("/healthz/live")
    assert response.status_code == 200
    assert response.content == b"ok"


def test_ready_touches_no_session(db):
    sessions_before = Session.objects.count()
    response = Client().get("/healthz/ready")
    assert response.status_code == 200
    assert response.content == b"ready"
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")
    assert Session.objects.count() == sessions_before


def test_ready_is_503_without_database(db):
    with mock.patch.object(connections["default"], "cursor", side_effect=OperationalError("down")):
        response = Client().get("/healthz/ready")
    assert response.status_code == 503


def test_probes_answer_head_but_not_post():
    assert Client().head("/healthz/live").status_code == 200
    assert Client().post("/healthz/live").status_code == 405


def test_every_response_says_who_served_it(db):
    expected = f"test-node/{os.getpid()}"
    assert Client().get("/healthz/live")["X-Served-By"] == expected
    assert Client().get("/login/")["X-Served-By"] == expected
    assert Client().get("/no/such/page/")["X-Served-By"] == expected
