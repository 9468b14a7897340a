"""Run the CMS in-process for its tests, with pytest-django: its fixtures (``db``, ``client``,
``settings``, ``django_user_model``) and a test database of its own.

Django is configured here rather than with DJANGO_SETTINGS_MODULE in pytest's ini, so that the
rest of the suite (real clusters, in subprocesses) runs without it. ``pytest_configure`` sets
Django up once per pytest process (each pytest-xdist worker is one) with the base settings on
SQLite, whatever the shell exports, then puts the environment back: other tests of the same
session (real clusters, on PostgreSQL in CI) still see it. pytest-django then creates the test
database (SQLite in memory, one per worker) and runs every test that asks for ``db`` inside a
transaction that is rolled back after it.
"""

import os
import sys
import tempfile
import uuid
from pathlib import Path

import django
import pytest
from django.conf import settings as django_settings
from django.test import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
LAB_SOLUTION = REPO_ROOT / "solutions" / "01-stateful"
LAB_STUB = Path(__file__).resolve().parent / "lab_stub"

# What the shell may export for the clusters, none of which the cms tests may see.
IGNORED = ("DATABASE_URL", "CMS_NODE_DIR", "CMS_SETTINGS_LAYERS", "CMS_AUDIT_SINK", "CMS_CRM_TOKEN_STORE")

_data_dir: tempfile.TemporaryDirectory | None = None


def pytest_configure(config):
    """Set Django up before pytest imports the test modules (they import models). When pytest
    loads this file at start-up (`pytest tests/cms`), pytest-django's own pytest_configure comes
    after this one and finds Django set up; in a run of the whole suite, pytest loads it while
    collecting this folder, after pytest-django's turn."""
    global _data_dir
    if django_settings.configured:
        raise pytest.UsageError(
            "Django was configured before the cms tests could configure it (DJANGO_SETTINGS_MODULE "
            "in the environment, or --ds): unset it, the cms tests choose their own settings"
        )
    _data_dir = tempfile.TemporaryDirectory(prefix="cms-tests-")
    saved = dict(os.environ)
    try:
        for name in IGNORED:
            os.environ.pop(name, None)
        os.environ["DJANGO_SETTINGS_MODULE"] = "cms.settings"
        os.environ["CMS_DATA_DIR"] = _data_dir.name
        os.environ["CMS_NODE_NAME"] = "test-node"
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        # The audit sink and CRM token store come from the lab folder: the workshop's solution
        # when this checkout has it, else the single-server stand-ins next to this file.
        sys.path.insert(0, str(LAB_SOLUTION if LAB_SOLUTION.is_dir() else LAB_STUB))
        django.setup()  # reads cms.settings, with the environment above
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pytest_unconfigure(config):
    if _data_dir is not None:
        _data_dir.cleanup()


@pytest.fixture(scope="session", autouse=True)
def _database_only_when_asked(django_db_blocker):
    """A test reaches the database only through ``db`` (or the ``django_db`` marker), in every
    run: pytest-django blocks it by itself only when it sets Django up itself."""
    with django_db_blocker.block():
        yield


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """The default hasher costs about half a second a password; tests need no real security."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def client():
    """Django's test client, as pytest-django's ``client`` fixture gives it. Named here because
    the workshop's pytest plugin has a ``client`` fixture too (a browser on a running cluster,
    for the lab checks), and which of two plugins' fixtures wins depends on the order they load."""
    return Client()


def _make_account(name):
    from cms.signage.models import Account

    return Account.objects.create(slug=f"test-{uuid.uuid4().hex[:12]}", name=name)


def _make_member(user_model, account):
    from cms.signage.models import Profile

    user = user_model.objects.create_user(f"user-{uuid.uuid4().hex[:12]}", password="secret-pw")
    Profile.objects.create(user=user, account=account)
    return user


@pytest.fixture
def account(db):
    return _make_account("Test Account")


@pytest.fixture
def member(django_user_model, account):
    """A user of ``account``; password "secret-pw"."""
    return _make_member(django_user_model, account)


@pytest.fixture
def member_client(client, member):
    """A test client signed in as ``member``."""
    client.force_login(member)
    return client


@pytest.fixture
def other_account(db):
    """An account that ``member`` does not belong to."""
    return _make_account("Other Account")


@pytest.fixture
def other_member(django_user_model, other_account):
    return _make_member(django_user_model, other_account)
