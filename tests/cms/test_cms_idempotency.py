"""The invoice task is idempotent for real: two deliveries of its message at the same time
(acks_late's redelivery, a visibility timeout shorter than the task) charge an invoice once.

Each backend runs in a process of its own (concurrent_deliveries.py) with two threads, two
database connections, both reading the unpaid invoice before either writes. SQLite always;
PostgreSQL too when DATABASE_URL names one (on a database of its own, dropped afterwards).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workshop.services import Database

HELPER = Path(__file__).resolve().parent / "concurrent_deliveries.py"
REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def two_deliveries_at_once(database_url: str, data_dir: Path) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cms.settings",
        "DATABASE_URL": database_url,
        "CMS_DATA_DIR": str(data_dir),
        "CMS_NODE_NAME": "test-node",
        "PYTHONPATH": str(REPO_ROOT),
    }
    for name in ("CMS_SETTINGS_LAYERS", "REDIS_URL"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, str(HELPER)], env=env, cwd=data_dir, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("OUTCOME ")]
    assert result.returncode == 0 and lines, f"the two deliveries did not run:\n{result.stdout}{result.stderr}"
    return json.loads(lines[-1].removeprefix("OUTCOME "))


def assert_charged_once(outcome: dict) -> None:
    assert outcome["errors"] == [], outcome
    assert len(outcome["results"]) == 2, outcome  # both deliveries ran to the end
    assert outcome["charges"] == 1, f"two deliveries at once charged the invoice {outcome['charges']} times: {outcome}"
    assert (outcome["attempts"], outcome["status"]) == (1, "paid"), outcome
    attempted = sorted(result["attempted"] for result in outcome["results"])
    assert attempted == [0, 1], outcome  # one delivery charged it, the other saw it claimed


def test_two_deliveries_at_once_charge_an_invoice_once_on_sqlite(tmp_path):
    outcome = two_deliveries_at_once(f"sqlite:///{tmp_path / 'cms.sqlite3'}", tmp_path)
    assert outcome["vendor"] == "sqlite", outcome
    assert_charged_once(outcome)


@pytest.mark.skipif(not POSTGRES, reason="DATABASE_URL names no PostgreSQL server")
def test_two_deliveries_at_once_charge_an_invoice_once_on_postgresql(tmp_path):
    database = Database(tmp_path)  # a database of its own on the DATABASE_URL server
    try:
        outcome = two_deliveries_at_once(database.url, tmp_path)
    finally:
        database.drop()
    assert outcome["vendor"] == "postgresql", outcome
    assert_charged_once(outcome)
