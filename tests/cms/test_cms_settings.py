"""Settings read from the environment, imported afresh in a child process for each case."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

SHOW_SETTINGS = """
import json
from cms import settings
database = settings.DATABASES["default"]
print(json.dumps({
    "engine": database["ENGINE"],
    "options": database.get("OPTIONS", {}),
    "conn_max_age": database["CONN_MAX_AGE"],
    "broker": settings.CELERY_BROKER_URL,
    "results": settings.CELERY_RESULT_BACKEND,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "debug": settings.DEBUG,
    "node_dir": str(settings.CMS_NODE_DIR),
    "layered": getattr(settings, "LAYERED_SETTING", None),
}))
"""


def settings_with(tmp_path, python_path=(), **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CMS_", "DATABASE_URL", "REDIS_URL"))}
    clean.update(CMS_DATA_DIR=str(tmp_path), PYTHONPATH=os.pathsep.join([*map(str, python_path), str(REPO_ROOT)]))
    clean.update(env)
    result = subprocess.run([sys.executable, "-c", SHOW_SETTINGS], env=clean, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout)


def test_lab_defaults(tmp_path):
    shown = settings_with(tmp_path)
    assert shown["engine"] == "django.db.backends.sqlite3"
    assert shown["options"] == {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    assert (shown["broker"], shown["results"]) == ("memory://", "cache+memory://")
    assert shown["allowed_hosts"] == ["*"]
    assert shown["debug"] is False
    assert shown["node_dir"] == str(tmp_path / "node")
    assert not (tmp_path / "node").exists()  # created when first written to


def test_servers_from_the_environment(tmp_path):
    shown = settings_with(
        tmp_path,
        DATABASE_URL="postgresql://cms@db.internal:5432/cms",
        REDIS_URL="redis://cache.internal:6379/1",
        ALLOWED_HOSTS="cms.example.com,www.example.com",
        DEBUG="1",
    )
    assert (shown["engine"], shown["options"], shown["conn_max_age"]) == ("django.db.backends.postgresql", {}, 0)
    assert shown["broker"] == shown["results"] == "redis://cache.internal:6379/1"
    assert shown["allowed_hosts"] == ["cms.example.com", "www.example.com"]
    assert shown["debug"] is True


def test_settings_layers(tmp_path):
    layers = tmp_path / "lab"
    layers.mkdir()
    (layers / "settings_first.py").write_text("LAYERED_SETTING = 'first'\n")
    (layers / "settings_second.py").write_text("LAYERED_SETTING = 'second'\n")
    (layers / "settings_broken.py").write_text("import no_such_dependency\n")

    # A layer that is not on the path yet is skipped; later layers win.
    layered = "settings_not_yet,settings_first,settings_second"
    assert settings_with(tmp_path, [layers], CMS_SETTINGS_LAYERS=layered)["layered"] == "second"
    # A layer that is there but fails to import is an error, not a silent skip.
    with pytest.raises(RuntimeError, match="no_such_dependency"):
        settings_with(tmp_path, [layers], CMS_SETTINGS_LAYERS="settings_broken")
