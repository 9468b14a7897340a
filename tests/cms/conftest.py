"""Run the CMS in-process for its tests: Django set up once, on a throw-away SQLite file.

Plain pytest (no pytest-django): this module configures Django when pytest loads it,
before any test module imports a model, and every test that touches the database runs
inside a transaction that is rolled back (the ``db`` fixture).
"""

import os
import sys
import tempfile
import uuid
from pathlib import Path

import django
import pytest
from django.core.management import call_command
from django.db import connections, transaction
from django.test.utils import setup_test_environment, teardown_test_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
LAB_SOLUTION = REPO_ROOT / "solutions" / "01-stateful"
LAB_STUB = Path(__file__).resolve().parent / "lab_stub"

_data_dir = tempfile.TemporaryDirectory(prefix="cms-tests-")

# The tests run on their own SQLite file and the base settings, whatever the shell
# exports. The environment is put back once settings are loaded, so that other tests
# of the same session (real clusters, on PostgreSQL in CI) still see it.
_saved_environ = dict(os.environ)
for _name in ("DATABASE_URL", "CMS_NODE_DIR", "CMS_SETTINGS_LAYERS", "CMS_AUDIT_SINK", "CMS_CRM_TOKEN_STORE"):
    os.environ.pop(_name, None)
os.environ["DJANGO_SETTINGS_MODULE"] = "cms.settings"
os.environ["CMS_DATA_DIR"] = _data_dir.name
os.environ["CMS_NODE_NAME"] = "test-node"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
# The audit sink and CRM token store come from the lab folder: the workshop's solution
# when this checkout has it, else the single-server stand-ins next to this file.
sys.path.insert(0, str(LAB_SOLUTION if LAB_SOLUTION.is_dir() else LAB_STUB))

django.setup()
setup_test_environment()
os.environ.clear()
os.environ.update(_saved_environ)

# Only importable once Django is set up.
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.test import Client  # noqa: E402

from cms.signage.models import Account, Profile  # noqa: E402

# The default hasher costs about half a second a password; tests need no real security.
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

call_command("migrate", verbosity=0)


def pytest_unconfigure(config):
    teardown_test_environment()
    connections.close_all()
    _data_dir.cleanup()


@pytest.fixture
def db():
    """Everything the test writes to the database is rolled back after it."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def _make_account(name):
    return Account.objects.create(slug=f"test-{uuid.uuid4().hex[:12]}", name=name)


def _make_member(account):
    user = User.objects.create_user(f"user-{uuid.uuid4().hex[:12]}", password="secret-pw")
    Profile.objects.create(user=user, account=account)
    return user


@pytest.fixture
def account(db):
    return _make_account("Test Account")


@pytest.fixture
def member(account):
    """A user of ``account``; password "secret-pw"."""
    return _make_member(account)


@pytest.fixture
def member_client(member):
    """A test client signed in as ``member``."""
    client = Client()
    client.force_login(member)
    return client


@pytest.fixture
def other_account(db):
    """An account that ``member`` does not belong to."""
    return _make_account("Other Account")


@pytest.fixture
def other_member(other_account):
    return _make_member(other_account)
