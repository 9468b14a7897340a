"""Unit tests of the harness's pieces: lab.toml linting, lab lookup, layers, Procfiles,
and the CRM stand-in (a real process, over HTTP)."""

import shutil
from pathlib import Path

import httpx
import pytest

from workshop.curriculum import UnknownLab, find_lab, lint, load_lab
from workshop.layers import layer_dirs, materialize_starter, settings_modules
from workshop.paths import LABS_DIR, SOLUTIONS_DIR
from workshop.processes import Supervisor
from workshop.procfile import ProcfileError, read_procfile
from workshop.services import start_crm
from workshop.topology import procfile_instances


def test_find_lab_accepts_numbers_and_names():
    assert find_lab("1").slug == find_lab("01").slug == find_lab("stateful").slug == "01-stateful"


@pytest.mark.parametrize("name", ["9", "abc", "", "00"])
def test_find_lab_names_the_available_labs(name):
    with pytest.raises(UnknownLab, match=r"Available labs: 01 \(01-stateful\), 02 \(02-sessions\), 03 "):
        find_lab(name)


def _lab_copy(tmp_path: Path) -> Path:
    shutil.copytree(LABS_DIR / "01-stateful", tmp_path / "labs" / "01-stateful")
    return tmp_path / "labs" / "01-stateful"


def test_lint_catches_an_empty_hint_a_missing_check_and_a_todo_less_file(tmp_path):
    lab_dir = _lab_copy(tmp_path)
    toml = (lab_dir / "lab.toml").read_text()
    toml = toml.replace(
        "checks/test_stateful.py::test_one_crm_token_for_the_whole_cluster", "checks/test_stateful.py::test_nope"
    )
    toml = toml.replace('hints = [\n    "Which storage', 'hints = [\n    "",\n    "Which storage')
    (lab_dir / "lab.toml").write_text(toml)
    (lab_dir / "audit_sink.py").write_text("class AuditSink: pass\n")
    problems = lint(load_lab(lab_dir))
    assert any("has no test test_nope" in p for p in problems), problems
    assert any("an empty hint" in p for p in problems), problems
    assert any("audit_sink.py has no TODO" in p for p in problems), problems


def test_lint_wants_evidence_for_an_observe_step(tmp_path):
    lab_dir = _lab_copy(tmp_path)
    toml = (lab_dir / "lab.toml").read_text().replace('demo = "workshop demo 01"\n', "")
    (lab_dir / "lab.toml").write_text(toml)
    assert any("needs a demo command" in p for p in lint(load_lab(lab_dir)))


def test_layers_put_the_lab_files_first_then_earlier_solutions():
    first, second = find_lab("01"), find_lab("02")
    assert layer_dirs(first, first.path) == [first.path]  # lab 01 has no earlier labs
    assert layer_dirs(second, second.path) == [second.path, SOLUTIONS_DIR / "01-stateful"]
    assert settings_modules(first) == [] and settings_modules(second) == ["session_settings"]


def test_the_starter_is_the_shipped_file_whatever_the_learner_changed_or_committed(tmp_path):
    lab = find_lab("01")
    folder = materialize_starter(lab, tmp_path)
    for name in lab.edit:
        assert "TODO" in (folder / name).read_text()
        assert (folder / name).read_text() == (lab.starter_path / name).read_text()


def test_an_entry_listed_twice_runs_as_numbered_instances():
    assert procfile_instances(("worker", "beat", "beat")) == [
        ("worker", "worker"),
        ("beat-1", "beat"),
        ("beat-2", "beat"),
    ]


def test_procfile_parsing(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("# comment\nweb: pyuwsgi --master\n\nworker: celery -A cms worker --concurrency=2\n")
    assert read_procfile(procfile) == {
        "web": ["pyuwsgi", "--master"],
        "worker": ["celery", "-A", "cms", "worker", "--concurrency=2"],
    }
    procfile.write_text("web pyuwsgi\n")
    with pytest.raises(ProcfileError, match="expected 'name: command'"):
        read_procfile(procfile)


def test_crm_stand_in_grants_tokens_up_to_its_limit(tmp_path):
    form = {
        "grant_type": "refresh_token",
        "client_id": "workshop-client",
        "client_secret": "workshop-secret",
        "refresh_token": "workshop-refresh-token",
    }
    with Supervisor() as supervisor:
        crm = start_crm(supervisor, tmp_path, token_limit=2)
        first = httpx.post(f"{crm.url}/oauth/v2/token", data=form).json()
        assert httpx.post(f"{crm.url}/oauth/v2/token", data=form).status_code == 200
        refused = httpx.post(f"{crm.url}/oauth/v2/token", data=form)
        assert refused.status_code == 400 and refused.json()["error"] == "Access Denied"

        headers = {"Authorization": f"Zoho-oauthtoken {first['access_token']}"}
        ok = httpx.post(f"{crm.url}/crm/v2/Contacts/upsert", json={"data": [{"Account_Name": "acme"}]}, headers=headers)
        assert ok.json()["data"][0]["code"] == "SUCCESS"
        bad = httpx.post(
            f"{crm.url}/crm/v2/Contacts/upsert", json={"data": []}, headers={"Authorization": "Zoho-oauthtoken nope"}
        )
        assert bad.status_code == 401 and bad.json()["code"] == "INVALID_TOKEN"
        stats = crm.stats()
        assert (stats["grants"], stats["refused"], stats["api_calls"], stats["invalid_token"]) == (2, 1, 1, 1)
    assert not crm.process.running()


def test_bad_client_credentials_are_refused(tmp_path):
    with Supervisor() as supervisor:
        crm = start_crm(supervisor, tmp_path)
        response = httpx.post(
            f"{crm.url}/oauth/v2/token",
            data={"grant_type": "refresh_token", "refresh_token": "workshop-refresh-token", "client_id": "x"},
        )
        assert response.json() == {"error": "invalid_client"}
        assert crm.stats()["grants"] == 0
