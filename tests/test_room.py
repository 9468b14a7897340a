"""The room view (`workshop room`): a facilitator sees every attendee's progress live.

Most tests run the room's server in a thread on 127.0.0.1 and talk to it over HTTP, as attendees
and the facilitator's page do. Two start the real `workshop room serve` process: one restarts it
from its snapshot, one joins 30 simulated attendees (the same client code `workshop check` uses)
and reads the grid and the failure classes back from the page in a real headless Chromium.
"""

from __future__ import annotations

import io
import os
import queue
import re
import secrets
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from test_browser import chromium, quit_browser, start_browser  # noqa: F401  (chromium: a fixture)
from typer.testing import CliRunner

from workshop import progress
from workshop.checking import CheckRun
from workshop.cli import app
from workshop.curriculum import all_labs, find_lab
from workshop.paths import ROOT
from workshop.room import client
from workshop.room.agenda import find_agenda, load_agendas, pace
from workshop.room.server import RoomServer
from workshop.room.state import RESULTS_PER_MINUTE, WRONG_CODES_PER_MINUTE, Room, show_code

LABS = all_labs()
BY_CODE = {lab.code: lab for lab in LABS}
LAB02, LAB05 = BY_CODE["02"], BY_CODE["05"]
SHARED_CACHE, CACHED_DB, LOGOUT = LAB02.checked_steps


@contextmanager
def running_room(agenda: str = "90min", started: float | None = None, snapshot: Path | None = None):
    room = Room(LABS, find_agenda(agenda, BY_CODE), started=started)
    server = RoomServer(room, "127.0.0.1", 0, snapshot)
    thread = server.start_in_thread()
    try:
        yield server
    finally:
        server.stop()
        thread.join(timeout=10)


@pytest.fixture
def served():
    with running_room() as server:
        yield server


@pytest.fixture
def state_folder(tmp_path, monkeypatch):
    """The harness's state folder (progress.json, room.json) of one simulated attendee."""
    folder = tmp_path / "state"
    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(folder))
    return folder


def join(server: RoomServer, name: str | None = None) -> str:
    body = {"code": server.room.code, **({"name": name} if name else {})}
    answer = httpx.post(f"{server.url}/api/join", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def post(server: RoomServer, token: str | None, body: object = None, headers=(), **options) -> httpx.Response:
    headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **dict(headers)}
    if body is not None:
        options["json"] = body
    return httpx.post(f"{server.url}/api/results", headers=headers, **options)


def room_data(server: RoomServer) -> dict:
    answer = httpx.get(f"{server.url}/api/room", headers={"Authorization": f"Bearer {server.room.key}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def what_the_room_holds(server: RoomServer) -> dict:
    """The room's data without the clock: equal before and after a refused request."""
    data = room_data(server)
    for row in data["attendees"]:
        row.pop("on_step"), row.pop("last_seen")
    return {key: data[key] for key in ("attendees", "stuck", "pace")}


def failing(lab, step, hint: int, named_step=None) -> CheckRun:
    """A check run of one step that failed naming a hint (of `named_step`, the step itself by default)."""
    named = {"lab": lab.code, "step": (named_step or step).id, "hint": hint, "seen": "what it saw, never sent"}
    return CheckRun(1, {step.check_name: "failed"}, {step.check_name: named})


def passing(*steps) -> CheckRun:
    return CheckRun(0, {step.check_name: "passed" for step in steps})


# -- joining and the facilitator's key -------------------------------------------------------------


def test_joining_needs_the_code_and_hands_out_a_token(served):
    wrong = httpx.post(f"{served.url}/api/join", json={"code": "AAAAAA", "name": "Mallory"})
    assert wrong.status_code == 403 and "wrong join code" in wrong.json()["error"]
    assert room_data(served)["attendees"] == []
    typed = show_code(served.room.code).lower().replace("-", " - ")  # typed by hand: any case, dashes, spaces
    answer = httpx.post(f"{served.url}/api/join", json={"code": typed, "name": "Ada"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["labs"] == ["02", "05"] and len(answer.json()["token"]) >= 32
    assert [row["name"] for row in room_data(served)["attendees"]] == ["Ada"]
    anonymous = httpx.post(f"{served.url}/api/join", json={"code": served.room.code}).json()
    assert anonymous["name"] == "attendee 2"


@pytest.mark.parametrize(
    "body, status, error",
    [
        ({"code": "X", "name": "x" * 41}, 422, "1 to 40 characters"),
        ({"code": "X", "name": "Ada\x1b[31m"}, 422, "printable"),
        ({"code": "X", "name": "Ada", "home": "/home/ada"}, 400, "does not take: home"),
        ({"name": "Ada"}, 400, "lacks: code"),
        (["code"], 400, "JSON object"),
    ],
)
def test_a_malformed_join_is_refused(served, body, status, error):
    answer = httpx.post(f"{served.url}/api/join", json=body)
    assert answer.status_code == status and error in answer.json()["error"]
    assert room_data(served)["attendees"] == []


def test_wrong_codes_are_limited_per_address(served):
    for _ in range(WRONG_CODES_PER_MINUTE):
        assert httpx.post(f"{served.url}/api/join", json={"code": "WRONG1"}).status_code == 403
    limited = httpx.post(f"{served.url}/api/join", json={"code": served.room.code})  # even the right one now
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "60"
    assert "too many wrong join codes" in limited.json()["error"]
    assert room_data(served)["attendees"] == []


def test_the_facilitators_data_needs_its_key(served):
    token = join(served, "Ada")
    url = f"{served.url}/api/room"
    for headers in ({}, {"Authorization": f"Bearer {token}"}, {"Authorization": f"Bearer {secrets.token_urlsafe(18)}"}):
        refused = httpx.get(url, headers=headers)
        assert refused.status_code == 401 and "facilitator's key" in refused.json()["error"]
    assert httpx.get(url, headers={"Authorization": f"Bearer {served.room.key}"}).status_code == 200
    page = httpx.get(f"{served.url}/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert served.room.key not in page.text and served.room.code not in page.text  # the page holds no data
    assert not re.search(r"""(src|href)=["']?https?://""", page.text), "the page must load nothing from elsewhere"


def test_unknown_pages_and_methods_get_json_errors(served):
    assert httpx.get(f"{served.url}/admin").status_code == 404
    wrong_method = httpx.get(f"{served.url}/api/join")
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
    assert httpx.post(f"{served.url}/api/room", json={}).status_code == 405
    assert "error" in httpx.post(f"{served.url}/nope", json={}).json()


def test_a_bug_in_the_room_answers_500_in_json(served, monkeypatch, capsys):
    monkeypatch.setattr(served.room, "record", lambda *args: 1 / 0)
    answer = post(served, "a-token", {"lab": "02", "results": []})
    assert answer.status_code == 500 and "the facilitator's terminal says why" in answer.json()["error"]
    assert "ZeroDivisionError" in capsys.readouterr().err


# -- results: each attendee posts only their own, only what the room allows ----------------------------


def test_an_attendee_posts_results_and_a_forged_token_is_refused(served):
    token = join(served, "Ada")
    body = {"lab": "02", "results": [{"step": "shared-cache", "status": "failed", "hint": 1}]}
    assert post(served, token, body).status_code == 200
    before = what_the_room_holds(served)
    assert before["attendees"][0]["cells"] == {"02/shared-cache": {"status": "failed", "hint": 2}}
    passed = {"lab": "02", "results": [{"step": "shared-cache", "status": "passed"}]}
    for forged in (secrets.token_urlsafe(24), token[:-1], ""):
        refused = post(served, forged, passed)
        assert refused.status_code == 401 and "unknown attendee token" in refused.json()["error"]
    refused = httpx.post(f"{served.url}/api/results", json=passed, headers={"Authorization": token})  # no "Bearer"
    assert refused.status_code == 401
    assert what_the_room_holds(served) == before


BAD_RESULTS = [
    ({"lab": "09", "results": [{"step": "x", "status": "passed"}]}, 422, "unknown lab"),
    ({"lab": 2, "results": [{"step": "x", "status": "passed"}]}, 422, "unknown lab"),
    ({"lab": "02", "results": [{"step": "observe", "status": "passed"}]}, 422, "no checked step 'observe'"),
    ({"lab": "02", "results": [{"step": "prestop", "status": "passed"}]}, 422, "no checked step"),
    ({"lab": "02", "results": [{"step": "cached-db", "status": "maybe"}]}, 422, "status must be one of"),
    ({"lab": "02", "results": [{"step": "cached-db", "status": "failed", "hint": 3}]}, 422, "from 0 to 2"),
    ({"lab": "02", "results": [{"step": "cached-db", "status": "failed", "hint": True}]}, 422, "from 0 to 2"),
    ({"lab": "02", "results": [{"step": "cached-db", "status": "passed", "hint": 0}]}, 422, "only a failed"),
    (
        {"lab": "02", "results": [{"step": "cached-db", "status": "failed", "hint": 0, "hint_step": "nope"}]},
        422,
        "no step 'nope'",
    ),
    (
        {"lab": "02", "results": [{"step": "cached-db", "status": "failed", "seen": "a traceback"}]},
        400,
        "does not take: seen",
    ),
    ({"lab": "02", "results": [], "file": "session_settings.py"}, 400, "does not take: file"),
    ({"lab": "02", "results": []}, 400, "a list of 1 to 3"),
    ({"lab": "02", "results": [{"step": "cached-db", "status": "passed"}] * 4}, 400, "a list of 1 to 3"),
    ({"lab": "02", "results": [{"step": "cached-db", "status": "passed"}] * 2}, 400, "appears twice"),
    ({"lab": "02", "results": "cached-db passed"}, 400, "a list of"),
    ({"lab": "02"}, 400, "lacks: results"),
    ([{"lab": "02"}], 400, "JSON object"),
]


@pytest.mark.parametrize("body, status, error", BAD_RESULTS)
def test_a_bad_result_is_refused_and_changes_nothing(served, body, status, error):
    token = join(served, "Ada")
    assert post(served, token, {"lab": "02", "results": [{"step": "cached-db", "status": "failed"}]}).is_success
    before = what_the_room_holds(served)
    refused = post(served, token, body)
    assert refused.status_code == status and error in refused.json()["error"], refused.text
    assert what_the_room_holds(served) == before


@pytest.mark.parametrize(
    "content, headers, status, error",
    [
        (b'{"lab": "02", "results": [', {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b"\xff\xfe", {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b"[" * 2000 + b"]" * 2000, {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b" " * 5000 + b"{}", {"Content-Type": "application/json"}, 413, "at most 4096 bytes"),
        (b'{"lab": "02"}', {"Content-Type": "text/plain"}, 415, "send JSON"),
    ],
)
def test_a_malformed_or_oversized_body_is_refused(served, content, headers, status, error):
    token = join(served, "Ada")
    before = what_the_room_holds(served)
    refused = post(served, token, content=content, headers=headers)
    assert refused.status_code == status and error in refused.json()["error"], refused.text
    assert what_the_room_holds(served) == before


def test_a_flood_from_one_attendee_is_limited_and_others_go_on(served):
    flooder, other = join(served, "Flo"), join(served, "Ada")
    failed = {"lab": "02", "results": [{"step": "shared-cache", "status": "failed", "hint": 0}]}
    codes = [post(served, flooder, failed).status_code for _ in range(RESULTS_PER_MINUTE)]
    assert codes == [200] * RESULTS_PER_MINUTE
    before = what_the_room_holds(served)
    passed = {"lab": "02", "results": [{"step": "shared-cache", "status": "passed"}]}
    refused = [post(served, flooder, passed) for _ in range(30)]
    assert {answer.status_code for answer in refused} == {429}
    assert "at most" in refused[0].json()["error"] and refused[0].headers["Retry-After"]
    assert what_the_room_holds(served) == before, "a refused post changed the room"
    assert post(served, other, passed).status_code == 200


def test_leaving_forgets_the_attendee(served):
    token, _ = join(served, "Ada"), join(served, "Bob")
    assert httpx.post(f"{served.url}/api/leave", json={}, headers={"Authorization": f"Bearer {token}"}).is_success
    assert [row["name"] for row in room_data(served)["attendees"]] == ["Bob"]
    body = {"lab": "02", "results": [{"step": "shared-cache", "status": "passed"}]}
    assert post(served, token, body).status_code == 401


# -- what the page shows ------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_grid_the_current_step_and_the_failure_classes():
    from workshop.room.view import view

    clock = Clock()
    room = Room(LABS, find_agenda("90min", BY_CODE), clock=clock)
    tokens = {name: room.join({"code": room.code, "name": name}, "10.0.0.1")[1] for name in ("Ada", "Bob", "Cy", "Di")}

    def send(name, run_lab, run):
        room.record(tokens[name], {"lab": run_lab.code, "results": client.results_of(run_lab, run)})

    send("Ada", LAB02, failing(LAB02, SHARED_CACHE, 1))
    send("Bob", LAB02, failing(LAB02, SHARED_CACHE, 1))
    send("Cy", LAB02, failing(LAB02, SHARED_CACHE, 0))
    send("Di", LAB02, passing(SHARED_CACHE))
    clock.now += 20 * 60
    send("Di", LAB02, failing(LAB02, CACHED_DB, 0, named_step=SHARED_CACHE))  # a later step failing on earlier ground
    data = view(room, "10.0.0.2:8300")

    assert [column["key"] for column in data["columns"]] == [
        f"{lab.code}/{step.id}" for lab in (find_lab("02"), find_lab("05")) for step in lab.checked_steps
    ]
    rows = {row["name"]: row for row in data["attendees"]}
    assert rows["Ada"]["cells"] == {"02/shared-cache": {"status": "failed", "hint": 2}}
    assert rows["Ada"]["current"] == "02/shared-cache" and rows["Ada"]["on_step"] == 20 * 60
    assert rows["Ada"]["long"]  # 20 min on a step of a 30-minute, 3-step lab: over 1.5 x 10 min
    assert rows["Di"]["current"] == "02/cached-db" and rows["Di"]["on_step"] == 20 * 60  # since it passed step 1
    (group,) = data["stuck"]
    assert (group["lab"], group["step"], group["failing"]) == ("02", "shared-cache", 4)
    assert [(item["count"], item["hint"], item["names"]) for item in group["classes"]] == [
        (2, 1, ["Cy", "Di"]),  # a tie: the earlier hint first
        (2, 2, ["Ada", "Bob"]),
    ]
    assert [item["text"] for item in group["classes"]] == list(SHARED_CACHE.hints[:2])
    assert data["join"]["command"] == f"workshop room join 10.0.0.2:8300 {show_code(room.code)}"


def test_the_pace_against_the_agenda():
    agenda = find_agenda("90min", BY_CODE)
    room = [{"02": 1}, {"02": 1}, {"02": 3}, {}]  # four attendees, median 1 step of lab 02
    lab02, lab05 = pace(agenda, BY_CODE, 30, room)  # 20 minutes into lab 02's 30: 2 of 3 steps planned
    assert (lab02["state"], lab02["expected"], lab02["median"], lab02["finished"]) == ("now", 2.0, 1.0, 1)
    assert lab02["verdict"] == "about 10 min behind"
    assert (lab05["state"], lab05["verdict"]) == ("next", "starts at 0:40")
    assert pace(agenda, BY_CODE, 20, room)[0]["verdict"] == "on pace"  # 10 minutes in: 1 of 3 planned
    assert pace(agenda, BY_CODE, 50, [{"02": 3}])[0]["verdict"] == "everyone finished"
    assert pace(agenda, BY_CODE, 12, [{"02": 3}, {"02": 2}])[0]["verdict"] == "about 23 min ahead"
    assert [slot.lab for slot in find_agenda("full-day", BY_CODE).slots if slot.lab] == ["01", "02", "03", "04", "05"]


def test_the_agendas_are_the_facilitator_guides():
    """agendas.toml and the guide's agenda tables: the same slots, starting at the same minutes."""
    guide = (ROOT / "docs" / "facilitator-guide.md").read_text()
    for agenda in load_agendas(labs=BY_CODE).values():
        section = guide.split(f"### {agenda.title}\n", 1)[1].split("\n### ", 1)[0]
        rows = [line.split("|")[1:3] for line in section.splitlines() if re.match(r"\| [\d:-]+ \|", line)]
        assert rows, f"no table under '### {agenda.title}'"
        starts = []
        for when, _ in rows:
            first = when.strip().split("-")[0]
            hours, _, minutes = first.rpartition(":")
            starts.append(int(hours or 0) * 60 + int(minutes))
        labs = []
        for _, what in rows:
            lab = re.match(r"\s*\**Lab (\d\d)\S*( part \d)?", what)
            labs.append(lab.group(1) if lab and lab.group(2) != " part 2" else None)
        assert [(start - starts[0], lab) for start, lab in zip(starts, labs, strict=True)] == [
            (slot.start, slot.lab) for slot in agenda.slots
        ], agenda.name


# -- the attendee's side: join, check, watch, leave; a room that goes away ------------------------------


def fake_run_checks(run: CheckRun):
    def run_checks(lab, files_dir, select=None, **options):
        return run

    return run_checks


def test_join_check_watch_and_leave_from_the_command_line(served, state_folder, monkeypatch):
    progress.record_results(LAB02, passing(SHARED_CACHE))  # done before joining: sent at join
    runner = CliRunner()
    wrong = runner.invoke(app, ["room", "join", served.address, "ZZZ-ZZZ", "--name", "Ada"])
    assert wrong.exit_code == 1 and "wrong join code" in wrong.output
    joined = runner.invoke(app, ["room", "join", served.address, show_code(served.room.code), "--name", "Ada"])
    assert joined.exit_code == 0, joined.output
    assert "Joined the room" in joined.output and "Never your code" in joined.output
    room_json = state_folder / "room.json"
    assert stat.S_IMODE(room_json.stat().st_mode) == 0o600
    assert set(client.joined()) == {"address", "attendee", "name", "token"}
    (row,) = room_data(served)["attendees"]
    assert row["cells"] == {"02/shared-cache": {"status": "passed", "hint": None}}

    monkeypatch.setattr("workshop.cli_labs.run_checks", fake_run_checks(failing(LAB02, CACHED_DB, 2)))
    checked = runner.invoke(app, ["check", "02"])
    assert checked.exit_code == 1 and "cached-db" in checked.output
    assert client.flush(5)
    (row,) = room_data(served)["attendees"]
    assert row["cells"]["02/cached-db"] == {"status": "failed", "hint": 3} and row["current"] == "02/cached-db"

    from workshop.watch import Watcher

    watcher = Watcher(LAB02, LAB02.path, runner=lambda *_: passing(CACHED_DB), console=Console(file=io.StringIO()))
    watcher.check_once()
    assert client.flush(5)
    assert room_data(served)["attendees"][0]["cells"]["02/cached-db"]["status"] == "passed"

    left = runner.invoke(app, ["room", "leave"])
    assert left.exit_code == 0 and "nothing more is sent" in left.output
    assert not room_json.exists() and room_data(served)["attendees"] == []
    assert "not in a room" in runner.invoke(app, ["room", "leave"]).output


def test_what_a_report_sends_is_lab_step_status_and_hint_only(served, tmp_path):
    seen = []
    original = client._post
    client_file = tmp_path / "room.json"
    client.join(served.address, served.room.code, "Ada", path=client_file)
    run = CheckRun(
        1,
        {SHARED_CACHE.check_name: "passed", CACHED_DB.check_name: "failed", LOGOUT.check_name: "skipped"},
        {CACHED_DB.check_name: {"lab": "02", "step": "shared-cache", "hint": 2, "seen": "/home/ada/labs: a secret"}},
    )
    try:
        client._post = lambda url, body, *rest, **options: seen.append(body) or original(url, body, *rest, **options)
        client.report(LAB02, run, path=client_file)
        assert client.flush(5)
    finally:
        client._post = original
    assert seen == [
        {
            "lab": "02",
            "results": [
                {"step": "shared-cache", "status": "passed"},
                {"step": "cached-db", "status": "failed", "hint": 2, "hint_step": "shared-cache"},
            ],
        }
    ]
    (group,) = room_data(served)["stuck"]
    assert (group["step"], group["classes"][0]["hint"]) == ("shared-cache", 3)


@contextmanager
def silent_room():
    """A room that accepts connections and never answers (a laptop that left the Wi-Fi)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield "127.0.0.1:%d" % listener.getsockname()[1]


@pytest.mark.parametrize("gone", ["stopped", "silent"])
def test_a_room_that_went_away_never_slows_or_fails_a_check(tmp_path, capfd, gone):
    client_file = tmp_path / "room.json"
    with running_room() as server:
        client.join(server.address, server.room.code, "Ada", path=client_file)
    with silent_room() if gone == "silent" else nullcontext(server.address) as address:
        if gone == "silent":
            state = client.joined(client_file)
            client._save({**state, "address": client.base_url(address)}, client_file)
        run = failing(LAB02, SHARED_CACHE, 1)
        progress_file = tmp_path / "progress.json"
        waits = []
        for _ in range(3):  # three checks in a row, as `workshop watch` runs them
            started = time.monotonic()
            progress.record_results(LAB02, run, progress_file)
            client.report(LAB02, run, path=client_file)
            waits.append(time.monotonic() - started)
        assert max(waits) < 0.25, f"report() waited for the room: {waits}"
        started = time.monotonic()
        assert client.flush(3 * client.TIMEOUT + 2), "the queued posts did not give up"
        assert time.monotonic() - started < 3 * client.TIMEOUT + 2
    assert progress.step_status(progress.load(progress_file), LAB02, "shared-cache") == "failed"
    assert run.returncode == 1 and run.failures[SHARED_CACHE.check_name]["hint"] == 1
    said = capfd.readouterr().err
    assert said.count("room unreachable") == 1, said  # once, not per check
    assert "results not sent" in said and client.joined(client_file)["problem"].startswith("room unreachable")


def test_the_check_command_with_a_room_gone_exits_as_without_one(state_folder, monkeypatch):
    with running_room() as server:
        client.join(server.address, server.room.code, "Ada")
    monkeypatch.setattr("workshop.cli_labs.run_checks", fake_run_checks(failing(LAB02, SHARED_CACHE, 0)))
    started = time.monotonic()
    result = CliRunner().invoke(app, ["check", "02"])
    took = time.monotonic() - started
    assert client.flush(client.TIMEOUT + 2)
    assert result.exit_code == 1 and "shared-cache" in result.output and "Traceback" not in result.output
    assert took < 5, f"workshop check took {took:.1f} s with the room gone"
    assert progress.step_status(progress.load(), LAB02, "shared-cache") == "failed"


# -- the real `workshop room serve` ---------------------------------------------------------------


class Serve:
    """`workshop room serve` as a facilitator starts it, with its printed address, code and page."""

    def __init__(self, *args: str):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        command = [sys.executable, "-m", "workshop.cli", "room", "serve", "--host", "127.0.0.1", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()
        try:
            self.output = self.read_until("Press Ctrl-C")
        except AssertionError:
            self.process.kill()
            self.process.wait()
            raise
        self.address, self.code = re.search(r"workshop room join (\S+) (\S+)", self.output).groups()
        self.page = re.search(r"Your page: +(\S+)", self.output).group(1)
        self.key = self.page.split("#key=")[1]

    def read_until(self, text: str, timeout: float = 60) -> str:
        seen = ""
        deadline = time.monotonic() + timeout
        while text not in seen:
            try:
                seen += self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {text!r} from workshop room serve; it printed: {seen}") from None
        return seen

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        return self.read_until("The room is closed", timeout=5)

    def data(self) -> dict:
        answer = httpx.get(f"http://{self.address}/api/room", headers={"Authorization": f"Bearer {self.key}"})
        assert answer.status_code == 200, answer.text
        return answer.json()


def test_serve_prints_how_to_join_and_resumes_from_its_snapshot(tmp_path):
    snapshot = tmp_path / "room-server.json"
    first = Serve("--snapshot", str(snapshot), "--agenda", "half-day")
    try:
        assert first.page.startswith(f"http://{first.address}/#key=")
        assert "Half a day" in first.output and "lab 01 at 0:15" in first.output
        token_file = tmp_path / "ada.json"
        client.join(first.address, first.code, "Ada", path=token_file)
        client.report(LAB02, failing(LAB02, SHARED_CACHE, 2), path=token_file)
        assert client.flush(5)
    finally:
        closed = first.stop()
    assert first.process.returncode == 0 and "1 attendee(s) kept" in closed
    saved = snapshot.read_text()
    assert client.joined(token_file)["token"] not in saved  # only its hash
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    second = Serve("--snapshot", str(snapshot))
    try:
        assert (second.address, second.code, second.key) == (first.address, first.code, first.key)
        (row,) = second.data()["attendees"]
        assert row["name"] == "Ada" and row["cells"]["02/shared-cache"]["hint"] == 3
        client.report(LAB02, passing(SHARED_CACHE), path=token_file)  # the same token works after the restart
        assert client.flush(5) and client.joined(token_file).get("problem") is None
        assert second.data()["attendees"][0]["cells"]["02/shared-cache"]["status"] == "passed"
        assert second.data()["agenda"]["name"] == "half-day"
    finally:
        second.stop()
    fresh = Serve("--snapshot", str(snapshot), "--new")
    try:
        assert fresh.code != first.code and fresh.data()["attendees"] == []
    finally:
        fresh.stop()


NAMES = (
    "Ada Ben Chloé Dev Emeka Fatima Gus Hana Ivan Jo Kenji Lea Mateo Nia Omar "
    "Priya Quinn Rosa Sven Tariq Uma Viktor Wen Xavi Yara Zoe Aino Bruno Carmen Dmitri"
).split()


def realistic_results() -> dict[str, list[tuple]]:
    """What 30 attendees 25 minutes into the 90-minute agenda have checked: per name, (lab, run)."""
    ran = {}
    for number, name in enumerate(NAMES):
        if number < 8:  # shared-cache fails: the cache is still per process
            ran[name] = [(LAB02, failing(LAB02, SHARED_CACHE, 0))]
        elif number < 12:
            ran[name] = [(LAB02, failing(LAB02, SHARED_CACHE, 1))]
        elif number < 21:  # step 1 done; cached-db fails on a flush
            ran[name] = [(LAB02, passing(SHARED_CACHE)), (LAB02, failing(LAB02, CACHED_DB, 1))]
        elif number < 24:
            ran[name] = [(LAB02, passing(SHARED_CACHE)), (LAB02, failing(LAB02, CACHED_DB, 2))]
        else:  # lab 02 done; some on lab 05 already
            ran[name] = [(LAB02, passing(*LAB02.checked_steps))]
            if number < 28:
                ran[name].append((LAB05, failing(LAB05, LAB05.checked_steps[0], 0)))
    return ran


READ_PAGE = """
const grid = {};
for (const row of document.querySelectorAll("#grid tbody tr")) {
  const cells = {};
  for (const cell of row.querySelectorAll("td[data-step]")) cells[cell.dataset.step] = cell.dataset.status;
  grid[row.querySelector("td.name").textContent] = cells;
}
const classes = [...document.querySelectorAll("#stuck .class")].map(
  (item) => [item.dataset.step, item.dataset.hint, item.dataset.count]);
const text = (selector) => (document.querySelector(selector) || {}).textContent;
return {grid, classes, first_hint: text("#stuck .class .text"), first_group: text("#stuck h3"),
        verdict: text(".pace-row[data-lab='02'] .verdict"), join: text("#join-command")};
"""


@pytest.mark.kit
@pytest.mark.timeout(300)
def test_thirty_attendees_on_the_facilitators_page_in_a_browser(request, tmp_path):
    browser, chromedriver = request.getfixturevalue("chromium")  # skips without the system's Chromium
    from selenium.webdriver.support.wait import WebDriverWait

    began = time.strftime("%H:%M", time.localtime(time.time() - 25 * 60))
    serve = Serve("--snapshot", str(tmp_path / "room.json"), "--agenda", "90min", "--start", began)
    driver = None
    try:
        files = {name: tmp_path / f"attendee-{number}.json" for number, name in enumerate(NAMES)}
        for name in NAMES:
            client.join(serve.address, serve.code.lower(), name, path=files[name])
        for name, runs in realistic_results().items():
            for lab, run in runs:
                client.report(lab, run, path=files[name])
        assert client.flush(30)
        assert not [name for name in NAMES if client.joined(files[name]).get("problem")]

        def page() -> dict:
            """What the page shows, read in one go (it re-renders every 2 s: no element outlives that)."""
            return driver.execute_script(READ_PAGE)

        def cell(name, key):
            return page()["grid"][name][key]

        def top_classes():
            return [tuple(item) for item in page()["classes"]]

        driver = start_browser(browser, chromedriver, tmp_path / "chromedriver.log")
        driver.set_window_size(1500, 1350)
        driver.get(serve.page)
        wait = WebDriverWait(driver, 30, poll_frequency=0.2)
        wait.until(lambda _: len(page()["grid"]) == 30)
        assert "#key=" not in driver.current_url, "the key stays in the address bar"

        assert cell("Ada", "02/shared-cache") == "failed" and cell("Ada", "02/cached-db") == "not run"
        assert cell("Mateo", "02/shared-cache") == "passed" and cell("Mateo", "02/cached-db") == "failed"
        assert cell("Zoe", "02/logout-everywhere") == "passed" and cell("Zoe", "05/graceful-sigterm") == "failed"
        assert cell("Dmitri", "05/graceful-sigterm") == "not run"

        assert top_classes() == [
            ("shared-cache", "1", "8"),
            ("shared-cache", "2", "4"),
            ("cached-db", "2", "9"),
            ("cached-db", "3", "3"),
            ("graceful-sigterm", "1", "4"),
        ]
        shown = page()
        assert shown["first_hint"] == f"hint 1 of {len(SHARED_CACHE.hints)}: {SHARED_CACHE.hints[0]}"
        assert "12 of 30 failing" in shown["first_group"]
        assert "behind" in shown["verdict"], shown["verdict"]  # median 1 of 3 steps, 25 min into lab 02's 10-40 slot
        assert serve.code in shown["join"]

        client.report(LAB02, passing(SHARED_CACHE), path=files["Ada"])  # live: no reload
        assert client.flush(5)
        wait.until(lambda _: cell("Ada", "02/shared-cache") == "passed")
        assert top_classes()[:3] == [("cached-db", "2", "9"), ("cached-db", "3", "3"), ("shared-cache", "1", "7")]
        # the facilitator guide's picture, taken again only when asked: a test run changes no file of the repository
        shot = ROOT / "docs" / "room.png" if os.environ.get("WORKSHOP_UPDATE_SCREENSHOTS") else tmp_path / "room.png"
        shot.write_bytes(driver.get_screenshot_as_png())
    finally:
        if driver is not None:
            quit_browser(driver)
        serve.stop()
    assert serve.process.returncode == 0
