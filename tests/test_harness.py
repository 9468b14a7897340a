"""Unit tests of the harness's pieces: lab.toml linting, lab lookup, layers, Procfiles,
and the CRM stand-in (a real process, over HTTP)."""

import os
import secrets
import shutil
import textwrap
import time
from pathlib import Path

import httpx
import psutil
import pytest
from process_support import has_ended

from workshop.curriculum import UnknownLab, find_lab, load_lab
from workshop.curriculum_lint import lint
from workshop.layers import layer_dirs, materialize_starter, settings_modules
from workshop.paths import LABS_DIR, SOLUTIONS_DIR
from workshop.processes import Supervisor
from workshop.procfile import ProcfileError, read_procfile
from workshop.services import start_crm
from workshop.topology import procfile_instances
from workshop.waiting import WaitTimedOut, wait_until


def test_find_lab_accepts_numbers_and_names():
    assert find_lab("1").slug == find_lab("01").slug == find_lab("stateful").slug == "01-stateful"


@pytest.mark.parametrize("name", ["9", "abc", "", "00"])
def test_find_lab_names_the_available_labs(name):
    with pytest.raises(UnknownLab, match=r"Available labs: 01 \(01-stateful\), 02 \(02-sessions\), 03 "):
        find_lab(name)


def test_a_wait_raises_at_its_timeout_unless_the_caller_takes_the_last_value():
    assert wait_until(lambda: [1], "a value", timeout=0.05, interval=0.01) == [1]
    with pytest.raises(WaitTimedOut, match=r"a value did not happen \(waited 0.05 s\)"):
        wait_until(lambda: [], "a value", timeout=0.05, interval=0.01)
    assert wait_until(lambda: [], "a value", timeout=0.05, interval=0.01, raise_on_timeout=False) == []


def _lab_copy(tmp_path: Path) -> Path:
    shutil.copytree(LABS_DIR / "01-stateful", tmp_path / "labs" / "01-stateful")
    return tmp_path / "labs" / "01-stateful"


def test_lint_catches_an_empty_hint_and_a_missing_check_but_not_the_learners_solved_file(tmp_path):
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
    assert not any("TODO" in p for p in problems), problems  # the learner's file; the starter keeps its TODO


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


# -- every machine's local writes are seen ------------------------------------------------


def _run_as_machine(tmp_path: Path, code: str) -> list:
    """Run `code` in a Python that loads the machine hook, as the harness's processes do."""
    import subprocess
    import sys

    from workshop.local_writes import read_local_writes
    from workshop.topology import MACHINE_DIR

    log = tmp_path / "writes.jsonl"
    env = {**os.environ, "PYTHONPATH": str(MACHINE_DIR), "WORKSHOP_LOCAL_WRITES": str(log), "CMS_NODE_NAME": "node-7"}
    (tmp_path / "app.py").write_text(code)
    subprocess.run([sys.executable, "-c", "import app; app.main()"], env=env, cwd=tmp_path, check=True, timeout=60)
    return read_local_writes(log)


def test_a_machines_local_writes_are_seen_wherever_they_go_with_the_line_of_code(tmp_path):
    shared = tmp_path / "shared"
    writes = _run_as_machine(
        tmp_path,
        "import os, pathlib, tempfile\n"
        "class Sink:\n"
        "    def record(self):\n"
        f"        pathlib.Path({str(shared)!r}).mkdir()\n"
        f"        open({str(shared / 'events.jsonl')!r}, 'a').write('x')\n"
        "def main():\n"
        "    Sink().record()\n"
        "    fd, name = tempfile.mkstemp()\n"
        "    os.close(fd)\n",
    )
    described = [str(write) for write in writes]
    assert f"node-7 created the folder {shared} (app.py:4 in Sink.record)" in described
    assert f"node-7 wrote {shared / 'events.jsonl'} (app.py:5 in Sink.record)" in described
    assert any(write.where == "app.py:8 in main" for write in writes)  # the temporary folder counts too
    assert all(write.made_under("app") for write in writes)


def test_bytecode_cached_in_one_folder_is_not_a_write(tmp_path, monkeypatch):
    """With PYTHONPYCACHEPREFIX (workshop.bytecode), a module compiled on import is written
    under that folder, as "x.cpython-3NN.pyc.<n>" then renamed: Python's cache, not the app's."""
    prefix = tmp_path / "pycache"
    (tmp_path / "fresh.py").write_text("VALUE = 1\n")
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(prefix))
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    writes = _run_as_machine(tmp_path, "def main():\n    import fresh\n")
    assert list(prefix.rglob("fresh.*.pyc")), "the module was not compiled into the cache folder"
    assert writes == []


@pytest.mark.parametrize("asked", ["1", None])
def test_the_harness_and_what_it_starts_cache_bytecode(tmp_path, asked):
    """PYTHONDONTWRITEBYTECODE=1 would make every cluster process compile Django and Celery
    again; the harness caches bytecode anyway, in one folder, never beside the sources."""
    import subprocess
    import sys

    (tmp_path / "fresh.py").write_text("VALUE = 1\n")
    prefix = tmp_path / "pycache"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    if asked:
        env |= {"PYTHONDONTWRITEBYTECODE": asked, "PYTHONPYCACHEPREFIX": str(prefix)}
    child = "import os, subprocess, sys; subprocess.run([sys.executable, '-c', 'import fresh'], check=True)"
    code = (
        f"import workshop, os, sys; {child}; print(os.environ.get('PYTHONDONTWRITEBYTECODE'), sys.dont_write_bytecode)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shown == ["None", "False"]
    if asked:
        assert list(prefix.rglob("fresh.*.pyc")) and not (tmp_path / "__pycache__").exists()
    else:
        assert list((tmp_path / "__pycache__").glob("fresh.*.pyc")) and not prefix.exists()


def test_reading_and_importing_are_not_writes(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    writes = _run_as_machine(tmp_path, "import json, email.mime.text\ndef main():\n    open('data.txt').read()\n")
    assert writes == []


def test_the_database_file_is_not_a_local_write():
    from workshop.local_writes import LocalWrite, describe, sqlite_files

    allowed = {str(path) for path in sqlite_files("sqlite:////run/x/cms.sqlite3")}
    assert {"/run/x/cms.sqlite3", "/run/x/cms.sqlite3-wal", "/run/x"} <= allowed
    assert sqlite_files("postgresql://db/cms") == []
    writes = [LocalWrite("node-1", "/a/b.log", "x.py:1 in f"), LocalWrite("node-2", "/a/b.log", "x.py:1 in f")]
    assert describe(writes) == "node-1, node-2 wrote /a/b.log (x.py:1 in f)"


# -- verify counts an assertion, not a setup error ------------------------------------------


def test_a_check_that_errored_in_setup_is_not_a_failing_step():
    from workshop.checking import CheckRun, StepVerdict

    run = CheckRun(1, {"test_a": "failed", "test_b": "failed", "test_c": "passed"}, phases={"test_a": "call"})
    assert run.verdict("test_a") == "failed" and run.failed_in_call("test_a")
    assert run.verdict("test_b") == "error in setup" and not run.failed_in_call("test_b")
    assert not StepVerdict("b", run.verdict("test_b"), "passed").sound
    blocked = CheckRun(2, {}, blocked="audit_sink.py, line 3: invalid syntax")
    assert blocked.verdict("test_a").startswith("blocked: audit_sink.py, line 3")


def test_a_lab_check_runs_without_pytest_django_and_without_django_in_process(tmp_path, monkeypatch):
    """The checks drive real clusters: Django is never set up in their own process, even with
    DJANGO_SETTINGS_MODULE exported, and pytest-django (installed for the cms tests) is not
    loaded, so `client` is the workshop's fixture."""
    from workshop.checking import run_checks

    lab_dir = _lab_copy(tmp_path)
    (lab_dir / "checks" / "test_in_process.py").write_text(
        "import django.apps\n\n\n"
        "def test_no_django_here(request):\n"
        "    assert not request.config.pluginmanager.has_plugin('django')\n"
        "    assert not django.apps.apps.ready\n"
    )
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "cms.settings")
    monkeypatch.setenv("CMS_DATA_DIR", str(tmp_path / "data"))  # were settings read, not in the checkout
    run = run_checks(load_lab(lab_dir), SOLUTIONS_DIR / "01-stateful", select=["checks/test_in_process.py"], quiet=True)
    assert run.outcomes == {"test_no_django_here": "passed"}, run


def test_the_corpus_lint_catches_undeclared_and_misnamed_variants(tmp_path):
    import subprocess
    import sys

    for folder in ("labs", "starters", "solutions"):
        shutil.copytree(LABS_DIR.parent / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    stray = tmp_path / "solutions" / "01-stateful" / "wrong_fixes" / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("x")
    (tmp_path / "starters" / "01-stateful" / "audit_sink.py").write_text("class AuditSink: pass\n")
    toml = tmp_path / "labs" / "01-stateful" / "lab.toml"
    toml.write_text(toml.read_text().replace('step = "crm-token"\nhint = 2', 'step = "no-such-step"\nhint = 2', 1))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from workshop.curriculum import find_lab; from workshop.curriculum_lint import lint; "
            "print(*lint(find_lab('01')), sep='\\n')",
        ],
        env={**os.environ, "WORKSHOP_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = result.stdout.splitlines()
    assert "solutions/01-stateful/wrong_fixes/stray/ is not declared in lab.toml" in problems, result
    assert any("'token-in-memory': names step 'no-such-step'" in problem for problem in problems), problems
    assert "starters/01-stateful/audit_sink.py has no TODO for the learner" in problems


def test_every_nginx_the_harness_configures_passes_nginx_t(tmp_path):
    """One module renders the harness's nginx configurations; nginx itself accepts them."""
    import subprocess

    from workshop import nginx

    body = "    server {\n        listen 127.0.0.1:8;\n        location / { return 200; }\n    }\n"
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx.main_conf(tmp_path, tmp_path, "probe", body, access_log_options="buffer=16k flush=1s"))
    result = subprocess.run([*nginx.command(tmp_path, conf), "-t"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_runs_side_by_side_on_one_external_redis_each_take_a_database_of_their_own(tmp_path, monkeypatch):
    from workshop.errors import BadInput
    from workshop.ports import free_port
    from workshop.services import claim_redis_database

    monkeypatch.delenv("WORKSHOP_REDIS_DATABASES", raising=False)  # as a run that did not ask
    external = f"redis://127.0.0.1:{free_port()}/15"  # a server of this test's own: no other run claims on it
    base = external.removesuffix("/15")
    assert claim_redis_database(external) == (external, None)  # not asked: the URL's own database

    monkeypatch.setenv("WORKSHOP_REDIS_DATABASES", "10-11")
    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path / "one-run"))
    first_url, first = claim_redis_database(external)
    # a run with a state folder of its own (a test's, a copy of the workshop's) on the same server
    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path / "another-run"))
    second_url, second = claim_redis_database(external)
    assert (first_url, second_url) == (f"{base}/10", f"{base}/11")
    first.close()  # that run ended: its database is free again
    third_url, third = claim_redis_database(external)
    assert third_url == first_url
    second.close(), third.close()

    monkeypatch.setenv("WORKSHOP_REDIS_DATABASES", "12-99")
    with pytest.raises(BadInput, match="expected database numbers 0-15"):
        claim_redis_database(external)


def test_free_ports_are_out_of_the_range_outgoing_connections_take(tmp_path):
    """A client connection (the load at 120 requests/s, a browser) takes its local port from
    the ephemeral range; a server port from there may be held by one when the server binds."""
    from workshop.ports import LOWEST_PORT, ephemeral_low, free_port

    low = ephemeral_low()
    ports = [free_port() for _ in range(200)]
    assert all(LOWEST_PORT <= port < low for port in ports)
    assert len(set(ports)) == len(ports)  # never the same port twice in a row of starts
    (tmp_path / "range").write_text("15000\t60999\n")
    assert ephemeral_low(tmp_path / "range") == 15000
    assert ephemeral_low(tmp_path / "missing") == 49152


@pytest.mark.parametrize(
    ("words", "clash"),
    [
        ("nginx: [emerg] bind() to 127.0.0.1:52251 failed (98: Address in use)", True),  # the nginx wheel (musl)
        ("bind(): Address already in use [core/socket.c line 769]", True),  # uWSGI (glibc)
        ("Could not create server TCP listening socket 127.0.0.1:6400: bind: Address already in use", True),
        ('nginx: [emerg] unknown directive "listne"', False),
    ],
)
def test_a_start_is_retried_on_a_port_clash_in_any_binarys_words(words, clash):
    from workshop.ports import retry_port_clash
    from workshop.processes import ServiceFailed

    attempts = []

    def start(attempt: int) -> str:
        attempts.append(attempt)
        if attempt == 0:
            raise ServiceFailed(f"load-balancer exited before it was ready.\n{words}")
        return "started"

    if clash:
        assert retry_port_clash(start) == "started" and attempts == [0, 1]
    else:
        with pytest.raises(ServiceFailed):
            retry_port_clash(start)
        assert attempts == [0]


# -- lab 03: the whole worker is killed between two sweeps ------------------------------


def test_a_lost_worker_is_killed_between_two_sweeps_never_during_one(tmp_path):
    """A worker SIGKILLed in the middle of kombu's sweep would leave the restore lock held
    for 300 s, and the lost task would not come back within the check's wait: the kill
    waits for a sweep in progress, and no sweep starts while it happens."""
    import threading

    import redis
    from kombu.transport.redis import Mutex, MutexHeld

    from workshop.scenarios.celery_workers import RESTORE_LOCK, kill_between_sweeps
    from workshop.services import start_redis

    def sweep(client, while_held=lambda: None):  # as kombu's QoS.restore_visible takes the lock
        with Mutex(client, RESTORE_LOCK, 300):
            while_held()

    with Supervisor() as supervisor:
        # kept to the end: on an external server it holds this test's database (dropped, its claim
        # went with it, and another run emptied the database, the lock with it, mid-sweep: CI)
        server = start_redis(supervisor, tmp_path)
        client = redis.Redis.from_url(server.url)
        sweeping, sweep_over = threading.Event(), threading.Event()

        def a_long_sweep():
            sweeping.set()
            time.sleep(0.3)
            sweep_over.set()

        sweeper = threading.Thread(target=sweep, args=(client, a_long_sweep))
        sweeper.start()
        assert sweeping.wait(5)
        seen = {}

        def kill():
            seen["sweep_over"] = sweep_over.is_set()
            try:
                sweep(client)
                seen["a_sweep_ran"] = True
            except MutexHeld:
                seen["a_sweep_ran"] = False

        kill_between_sweeps(client, kill)
        sweeper.join()
        assert seen == {"sweep_over": True, "a_sweep_ran": False}
        sweep(client)  # the lock is free again: the next sweep runs
        server.release()


# -- a check runs its modules side by side ----------------------------------------------


def test_a_check_runs_a_pytest_per_module_side_by_side_except_a_rehearsal():
    from workshop.checking import check_groups

    leaks, beat, rollouts = find_lab("03"), find_lab("04"), find_lab("05")
    assert check_groups(leaks) == [
        ["checks/test_celery_leaks.py"],
        ["checks/test_lost_worker.py"],
        ["checks/test_regressions.py"],
    ]
    assert check_groups(beat) == [["checks/test_beat.py"], ["checks/test_regressions.py"]]
    # lab 05's checks share one rehearsal (a session fixture): one run
    assert len(check_groups(rollouts)) == 1 and len(check_groups(rollouts)[0]) == 2
    steps = [step.check for step in leaks.checked_steps]
    assert sorted(target for group in check_groups(leaks, steps) for target in group) == sorted(steps)
    assert [len(group) for group in check_groups(leaks, steps)] == [4, 1]
    assert check_groups(leaks, [steps[-1]]) == [[steps[-1]]]  # one step, as `watch` runs it
    assert check_groups(leaks, steps, side_by_side=False) == [steps]  # a quiet run: one after the other


# -- a stop ends every process, even one that ignores its stop signal ----------------------

DEAF_TO_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "


def _deaf_process_spec(tmp_path: Path, code: str, **timeouts):
    import sys

    from workshop.ports import free_port
    from workshop.processes import ProcessSpec

    port = free_port()
    command = [sys.executable, "-c", DEAF_TO_SIGTERM + code.format(port=port)]
    return ProcessSpec(name="deaf", command=command, log_path=tmp_path / "deaf.log", ready_port=port, **timeouts)


def _returned_within(seconds: float, function) -> bool:
    """Whether `function`, run in a thread, returned within `seconds` (a wide margin)."""
    import threading

    thread = threading.Thread(target=function)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def test_a_process_stopped_before_it_is_ready_is_killed_at_once(tmp_path):
    """A stop signal can be lost while a process starts (uWSGI's master forking its workers
    takes a SIGINT as nothing); it has served nothing yet, so it is killed, not waited on."""
    import threading

    from workshop.processes import ServiceFailed

    spec = _deaf_process_spec(tmp_path, "time.sleep(600)", timeout=600, stop_timeout=600)
    supervisor = Supervisor()
    outcome = {}

    def start():
        try:
            supervisor.start(spec)
        except ServiceFailed as error:
            outcome["error"] = str(error)

    starting = threading.Thread(target=start)
    starting.start()
    wait_until(lambda: supervisor.processes and supervisor.processes[0].pid, "the process to be spawned", 30)
    popen = supervisor.processes[0]._executor.process
    # its readiness wait and its stop grace are ten times longer than these margins
    assert _returned_within(60, supervisor.close), "the stop waited on a process that was not ready"
    starting.join(60)
    assert popen.poll() is not None and "stopped while it started" in outcome["error"]


def test_a_ready_process_that_ignores_its_stop_signal_is_killed_after_its_stop_timeout(tmp_path):
    import signal

    code = "import socket; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)"
    with Supervisor() as supervisor:
        process = supervisor.start(_deaf_process_spec(tmp_path, code, timeout=600, stop_timeout=0.5))
        popen = process._executor.process
        assert _returned_within(60, lambda: supervisor.stop(process)), "the stop waited longer than its stop timeout"
        assert popen.poll() == -signal.SIGKILL


AT_FORK_PROBE = """
import os, sys
from pathlib import Path
from workshop.processes import ProcessSpec, Supervisor
hooks_run = []
os.register_at_fork(before=lambda: hooks_run.append("before"))
command = [sys.executable, "-c", "import time; time.sleep(30)"]
with Supervisor() as supervisor:
    process = supervisor.start(ProcessSpec(name="sleeper", command=command, log_path=Path(sys.argv[1])))
    print(len(hooks_run), os.getsid(process.pid) == process.pid)
"""


def test_a_process_starts_in_a_session_of_its_own_without_pythons_at_fork_hooks(tmp_path):
    """Python's at-fork hooks run only where Popen forks in Python (a `preexec_fn`): a Ctrl-C
    that lands in one is dropped, and can leave logging's lock held (workshop.processes.NewSession)."""
    import subprocess
    import sys

    from workshop.paths import ROOT

    probe = [sys.executable, "-c", AT_FORK_PROBE, str(tmp_path / "sleeper.log")]
    result = subprocess.run(probe, capture_output=True, text=True, cwd=ROOT, timeout=60)
    hooks_run, own_session = result.stdout.split() or ["?", "?"]
    assert (hooks_run, own_session) == ("0", "True"), result.stderr


STUCK_RUN = """
import faulthandler, signal, subprocess, sys, time
if sys.argv[2] == "dump":
    faulthandler.register(signal.SIGUSR1, file=open(sys.argv[1], "w"), all_threads=True)
signal.signal(signal.SIGINT, signal.SIG_IGN)  # told to stop, it does not
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
def stuck_in_its_teardown():
    time.sleep(600)
print("started", flush=True)
stuck_in_its_teardown()
"""


@pytest.mark.parametrize("dump", ["dump", "no dump"])  # "no dump": stuck before it set up its dump
def test_a_check_run_that_does_not_stop_is_killed_with_every_process_it_started(tmp_path, capsys, dump):
    """A check's pytest that hangs after Ctrl-C: the CLI stops waiting after its grace, kills it
    and what it started (a service in a session of its own too), and shows what it was doing."""
    import signal
    import subprocess
    import sys

    from workshop.checking import STACKS_FILE, _let_them_stop

    run = subprocess.Popen(
        [sys.executable, "-c", STUCK_RUN, str(tmp_path / STACKS_FILE), dump], stdout=subprocess.PIPE, text=True
    )
    assert run.stdout.readline() == "started\n"
    service = psutil.Process(run.pid).children()[0]
    run.send_signal(signal.SIGINT)
    assert _returned_within(60, lambda: _let_them_stop([(run, tmp_path)], grace=1)), "it waited longer than its grace"
    assert run.poll() == (-signal.SIGKILL if dump == "dump" else -signal.SIGUSR1)

    # SIGKILL takes effect in its own time
    assert wait_until(lambda: has_ended(service), "the run's service to be killed", 30, raise_on_timeout=False)
    said = capsys.readouterr().err
    assert f"pid {run.pid}) had not stopped 1 s after" in said and "what it had started (1 still running)" in said
    assert ("stuck_in_its_teardown" if dump == "dump" else "(nothing recorded)") in said


def test_a_check_that_fails_without_naming_a_hint_still_says_what_it_saw(tmp_path):
    """A plain assertion (a rollout that carried too few requests to prove anything) names no
    step; its message is kept, so an alternative that fails on it says why."""
    import subprocess
    import sys

    from workshop.checking import CheckRun

    (tmp_path / "test_small.py").write_text(
        "def test_small():\n    assert 1500 >= 2000, 'the rolling update carried 1500 requests'\n"
    )
    results = tmp_path / "results.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_small.py")]
        + ["--workshop-results", str(results)],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    run = CheckRun.from_results(1, results)
    assert run.outcomes == {"test_small": "failed"} and run.failures == {}
    assert "the rolling update carried 1500 requests" in run.errors["test_small"]


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
    reason="DATABASE_URL names no PostgreSQL server",
)
def test_runs_with_state_folders_of_their_own_build_a_postgresql_template_once(tmp_path):
    """Every run on a PostgreSQL server shares its database names, whatever its state folder (a
    test's own, another checkout): two that need the same template at once build it once (CI
    caught two building it side by side: `duplicate key ... datname`)."""
    import subprocess
    import sys

    import psycopg

    key = secrets.token_hex(12)
    builds = tmp_path / "builds.txt"
    build_one = textwrap.dedent(
        f"""
        import time
        import psycopg
        from workshop.services import DatabaseTemplate

        def build(url):
            with open({str(builds)!r}, "a") as out:
                out.write(url + "\\n")
            time.sleep(1)  # long enough for the other run to come while this one builds
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("CREATE TABLE seeded (id int)")

        print(DatabaseTemplate({key!r}, build).postgres_database({os.environ["DATABASE_URL"]!r}))
        """
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", build_one],
            env={**os.environ, "WORKSHOP_STATE_DIR": str(tmp_path / f"run-{n}")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in (1, 2)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    name = f"workshop_tpl_{key[:16]}"
    try:
        assert [run.returncode for run in runs] == [0, 0], outputs
        assert [output.strip() for output in outputs] == [name, name], outputs
        assert len(builds.read_text().splitlines()) == 1, builds.read_text()
    finally:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
            for database in (name, f"{name}_building"):
                connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_a_one_shot_command_that_exits_before_it_is_looked_at_has_started(tmp_path, monkeypatch):
    """A preStop hook (`echo q > fifo`) can be over before the harness looks at it, on a busy
    machine nearly always: that is a hook that ran, not a start that failed (its kubelet-ordered
    stop signal was then never sent). A process that should stay up and exits is still reported."""
    from mirakuru import SimpleExecutor

    from workshop.processes import ProcessSpec, ServiceFailed

    spawn = SimpleExecutor.start

    def spawn_and_let_it_finish(executor):
        spawn(executor)
        executor.process.wait(30)  # the busy machine: the command ends before the next line runs

    monkeypatch.setattr(SimpleExecutor, "start", spawn_and_let_it_finish)
    command = ["/bin/sh", "-c", "echo q"]
    with Supervisor() as supervisor:
        hook = supervisor.start(ProcessSpec("hook", command, tmp_path / "hook.log", one_shot=True))
        assert hook.wait(30) == 0 and (tmp_path / "hook.log").read_text() == "q\n"
        with pytest.raises(ServiceFailed, match="exited before it was ready"):
            supervisor.start(ProcessSpec("server", command, tmp_path / "server.log"))


def test_stopping_a_process_that_has_ended_signals_no_process_group(tmp_path, monkeypatch):
    """A process that ended on its own (a preStop hook, a crashed beat) may have given its pid,
    which is also its process group's id, to a new process by the time its cluster stops. The
    stop sends nothing to that group; what the ended process left running is still killed."""
    from workshop.processes import ProcessSpec

    signalled: list[int] = []
    killpg = os.killpg
    monkeypatch.setattr(os, "killpg", lambda pgid, sig: (signalled.append(pgid), killpg(pgid, sig)))
    with Supervisor() as supervisor:
        command = ["/bin/sh", "-c", "sleep 60 & echo $! > left.pid"]
        hook = supervisor.start(ProcessSpec("hook", command, tmp_path / "hook.log", cwd=tmp_path, one_shot=True))
        pid = hook.pid
        wait_until(lambda: not hook.running(), "the hook's end", timeout=30)  # reaped: its pid is free
        left = int((tmp_path / "left.pid").read_text())
        supervisor.stop(hook)
        assert pid not in signalled
        wait_until(lambda: has_ended(left), "the leftover", timeout=30)


def test_a_harness_process_that_ends_leaves_the_processes_of_others_alone_whatever_its_pid(tmp_path):
    """Every process the harness starts carries mirakuru's mark, `<pid of its starter>:<uuid4>`.
    A check run, a notebook's kernel or a `workshop` command that ends kills only what it started
    itself, not the processes of another cluster whose mark merely contains its pid's digits
    (mirakuru's own exit handler did: pid 1042 killed what pid 10427 had started)."""
    import subprocess
    import sys

    from workshop.processes import ProcessSpec

    with Supervisor() as supervisor:
        ours = supervisor.start(ProcessSpec("ours", ["sleep", "60"], tmp_path / "ours.log"))
        lookalike = str(os.getpid())[:-1]  # a prefix of our pid: a substring of our mark, not its owner
        ends = f"import os, workshop.processes; os.getpid = lambda: {lookalike}"
        subprocess.run([sys.executable, "-c", ends], check=True, timeout=60)
        time.sleep(0.5)  # a kill would have landed by now: it is sent before the process ends
        assert ours.running(), f"{ours.name} {ours.how_it_ended()} when a process with pid {lookalike} ended"


def test_what_a_harness_process_started_is_killed_when_it_ends(tmp_path):
    """The exit handler that replaces mirakuru's still does its job: a process started outside any
    cluster (nothing closes it) goes when the Python that started it ends."""
    import subprocess
    import sys

    starts = (
        "from pathlib import Path; from workshop.processes import ManagedProcess, ProcessSpec; "
        f"print(ManagedProcess(ProcessSpec('left', ['sleep', '60'], Path({str(tmp_path / 'left.log')!r}))).start().pid)"
    )
    left = int(subprocess.run([sys.executable, "-c", starts], capture_output=True, text=True, timeout=60).stdout)
    wait_until(lambda: has_ended(left), "the leftover", timeout=30)


NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")  # Linux: the pid handed out last (root may set it)


def test_stopping_a_process_that_has_ended_leaves_the_next_owner_of_its_pid_alone(tmp_path):
    """The same, for real: the ended hook's pid goes to a new session leader (as every process the
    harness starts is), and stopping the hook leaves that process running."""
    import subprocess

    from workshop.processes import ProcessSpec

    if not os.access(NS_LAST_PID, os.W_OK):
        pytest.skip(f"needs to choose the next pid ({NS_LAST_PID} writable: Linux, as root)")
    with Supervisor() as supervisor:
        for _ in range(20):  # another program may take the pid between the write and the spawn
            hook = supervisor.start(ProcessSpec("hook", ["/bin/true"], tmp_path / "hook.log", one_shot=True))
            wait_until(lambda hook=hook: not hook.running(), "the hook's end", timeout=30)
            NS_LAST_PID.write_text(str(hook.pid - 1))
            successor = subprocess.Popen(["sleep", "60"], start_new_session=True)
            if successor.pid == hook.pid:
                break
            successor.kill()
            successor.wait()
        else:
            pytest.skip("the machine's other programs took the pid each time")
        try:
            supervisor.stop(hook)
            assert successor.poll() is None, (
                f"the process that now has pid {successor.pid} got signal {-successor.returncode}"
            )
        finally:
            successor.kill()
            successor.wait()


def test_a_process_that_ended_says_how(tmp_path):
    """A check that finds a beat gone says how it ended (a signal nobody in the check sent is a
    lead of its own), beside the last error the beat logged."""
    import signal

    from workshop.processes import ProcessSpec

    with Supervisor() as supervisor:
        failed = supervisor.start(ProcessSpec("failed", ["/bin/sh", "-c", "exit 3"], tmp_path / "f.log", one_shot=True))
        stopped = supervisor.start(ProcessSpec("stopped", ["sleep", "60"], tmp_path / "s.log", one_shot=True))
        assert stopped.how_it_ended() is None
        stopped.send_signal(signal.SIGTERM)
        wait_until(lambda: not failed.running() and not stopped.running(), "both ends", timeout=30)
        assert (failed.how_it_ended(), stopped.how_it_ended()) == ("exit code 3", "ended by SIGTERM")


def test_a_cluster_that_ends_kills_its_processes_without_a_graceful_stop(tmp_path):
    """When a supervisor closes (a check's end, Ctrl-C) nobody is served any more: a graceful
    stop would only cost time (a uWSGI master notices its workers' end once a second, a Celery
    worker waits for its tasks). Each process and its group are killed at once; a restart of one
    process (`Supervisor.stop`) still asks it to stop."""
    from workshop.processes import ProcessSpec

    script = 'trap "echo asked > $0.asked; exit 0" INT TERM; sleep 60 & echo $! > $0.child; wait'
    with Supervisor() as supervisor:
        restarted, closed = (
            supervisor.start(ProcessSpec(name, ["/bin/sh", "-c", script, name], tmp_path / f"{name}.log", cwd=tmp_path))
            for name in ("restarted", "closed")
        )
        wait_until(lambda: (tmp_path / "closed.child").exists(), "the child", timeout=30)
        supervisor.stop(restarted)
    assert (tmp_path / "restarted.asked").exists()
    assert not (tmp_path / "closed.asked").exists()
    child = int((tmp_path / "closed.child").read_text())
    wait_until(lambda: has_ended(child), "its child", 30)
