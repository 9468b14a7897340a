"""The workshop notebooks, executed headless from top to bottom as a learner runs them.

The cluster tests start real processes (uWSGI, nginx, Valkey, the CRM stand-in) from
inside the notebooks' kernel; every notebook stops its clusters itself. The numbers are
kept small through environment variables (WORKSHOP_NB_PER_USER, WORKSHOP_NB_CRM_SYNCS, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

# `make test` runs them on the default path; CI's external-services leg skips them (-m 'not notebook').
pytestmark = pytest.mark.notebook

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = [
    "00-start-here.ipynb",
    "01-stateful.ipynb",
    "02-sessions.ipynb",
    "03-celery-leaks.ipynb",
    "04-beat.ipynb",
    "05-uwsgi-rollouts.ipynb",
]


def execute(name: str, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("WORKSHOP_NB_PER_USER", "3")
    monkeypatch.setenv("WORKSHOP_NB_CRM_SYNCS", "3")
    notebook = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        # a cell past its timeout gets a KeyboardInterrupt, so its cluster still stops
        interrupt_on_timeout=True,
        resources={"metadata": {"path": str(REPO_ROOT)}},
    )
    client.execute()  # raises CellExecutionError at the first cell that fails
    errors = [
        f"{output.ename}: {output.evalue}"
        for cell in code_cells(notebook)
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, f"{name}: cells raised {errors}"
    return notebook


def summary_of(notebook: nbformat.NotebookNode) -> dict:
    """The notebook's one `SUMMARY {json}` line, parsed."""
    lines = [
        line for cell in code_cells(notebook) for line in output_text(cell).splitlines() if line.startswith("SUMMARY ")
    ]
    assert len(lines) == 1, f"expected one SUMMARY line, got {lines}"
    return json.loads(lines[0].removeprefix("SUMMARY "))


def images_in(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for cell in code_cells(notebook) for output in cell.outputs)


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def output_text(cell: nbformat.NotebookNode) -> str:
    """What a cell printed and displayed, as text (stream, then markdown/plain reprs)."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("display_data", "execute_result"):
            data = output.get("data", {})
            parts.append(data.get("text/markdown") or data.get("text/plain", ""))
    return "".join(parts)


def test_notebooks_are_saved_clean():
    for name in NOTEBOOKS:
        notebook = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata.kernelspec.name == "python3", name
        for cell in code_cells(notebook):
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{name}: cell {cell.id} is saved with outputs; clear them before committing"
            )


@pytest.mark.cluster
@pytest.mark.timeout(900)
def test_start_here_runs(monkeypatch):
    notebook = execute("00-start-here.ipynb", monkeypatch)
    cells = code_cells(notebook)
    assert output_text(cells[0]).startswith("workshop ready: yes"), output_text(cells[0])
    coverage = output_text(cells[-1])
    assert "@node-1" in coverage and "@node-2" in coverage, coverage


@pytest.mark.cluster
@pytest.mark.timeout(1800)
def test_stateful_lab_reproduces_and_fixes(monkeypatch):
    notebook = execute("01-stateful.ipynb", monkeypatch)
    lines = [
        line for cell in code_cells(notebook) for line in output_text(cell).splitlines() if line.startswith("SUMMARY ")
    ]
    assert len(lines) == 1, f"expected one SUMMARY line, got {lines}"
    summary = json.loads(lines[0].removeprefix("SUMMARY "))
    assert summary["per_user"] == 3 and summary["crm_syncs"] == 3, summary

    # one node: the whole trail on its disk, one token
    assert summary["starter_1_node_missing"] == 0, summary
    assert summary["starter_1_node_refused"] == 0, summary
    # two nodes, starter files: events missing from reports, a token refused
    assert summary["starter_2_nodes_reports"] == 4, summary
    assert summary["starter_2_nodes_missing"] > 0, summary
    assert summary["starter_2_nodes_refused"] >= 1, summary
    # two nodes, solution: nothing missing, nothing on the disks, exactly one grant
    assert summary["solution_2_nodes_reports"] == 4, summary
    assert summary["solution_2_nodes_missing"] == 0, summary
    assert summary["solution_2_nodes_local_lines"] == 0, summary
    assert summary["solution_2_nodes_grants"] == 1, summary
    assert summary["solution_2_nodes_refused"] == 0, summary

    images = [
        output for cell in code_cells(notebook) for output in cell.outputs if "image/png" in output.get("data", {})
    ]
    assert len(images) == 2, f"expected the audit and CRM charts, got {len(images)} image(s)"


@pytest.mark.cluster
@pytest.mark.timeout(1800)
def test_sessions_notebook_measures_every_engine(monkeypatch):
    monkeypatch.setenv("WORKSHOP_NB_LATENCY_REQUESTS", "20")
    notebook = execute("02-sessions.ipynb", monkeypatch)
    summary = summary_of(notebook)
    assert summary["latency_requests"] == 20, summary

    # one node, the starter: several workers, and the user is logged out by one of them
    starter = summary["starter_1_node"]
    assert starter["workers_per_node"] > 1 and starter["first_logout"] is not None, starter

    engines = summary["engines"]
    survived = {engine: result["survived"] for engine, result in engines.items()}
    assert set(engines) == {"locmem cache", "shared cache", "db", "cached_db", "signed_cookies"}, engines
    assert not survived["locmem cache"]["node hop"], survived
    assert survived["shared cache"]["node hop"] and survived["shared cache"]["node restart"], survived
    assert not survived["shared cache"]["cache flush"], survived
    assert survived["db"]["cache flush"], survived
    assert all(survived["cached_db"].values()) and len(survived["cached_db"]) == 4, survived
    assert engines["cached_db"]["session_queries_per_view"] == 0, engines
    assert engines["db"]["session_queries_per_view"] >= 1, engines
    # a copy of a signed cookie is still logged in after the logout
    assert not survived["signed_cookies"]["logout elsewhere"], survived
    assert all(result["median_ms"] > 0 for result in engines.values()), engines

    assert images_in(notebook) == 2, "expected the survival grid and the latency chart"


@pytest.mark.cluster
@pytest.mark.timeout(1800)
def test_celery_leaks_notebook_measures_the_leak_and_the_fixes(monkeypatch):
    monkeypatch.setenv("WORKSHOP_NB_TASKS", "300")
    monkeypatch.setenv("WORKSHOP_NB_SWEEP_TASKS", "40")
    monkeypatch.setenv("WORKSHOP_NB_SWEEP_REPEATS", "1")
    monkeypatch.setenv("WORKSHOP_NB_LARGE_RENDERS", "60")
    notebook = execute("03-celery-leaks.ipynb", monkeypatch)
    summary = summary_of(notebook)
    assert (summary["tasks"], summary["sweep_tasks"], summary["large_renders"]) == (300, 40, 60), summary
    assert summary["sweep_repeats"] == 1, summary
    small, large = summary["leak_kib"]["small"], summary["leak_kib"]["large"]

    # every batch: every render succeeded
    large_runs = summary["large"]
    batches = [summary["starter"], summary["solution"], large_runs["max_tasks_only"], large_runs["solution"]]
    assert all(batch["succeeded"] == batch["tasks"] for batch in batches), batches
    assert all(row["succeeded"] == row["tasks"] == 40 for row in summary["sweep"]), summary["sweep"]

    # the starter: two children for good; the busier one ran >= 150 renders and kept every leak
    starter = summary["starter"]
    assert starter["tasks"] == 300 and starter["children"] == 2, starter
    assert starter["peak_rss_kib"] - starter["baseline_kib"] >= 100 * small, starter
    # the solution, 300 thumbnails: no child past 400 tasks, none past the check's ceiling
    # (150 renders a child on average, below both limits: children are not replaced yet)
    solution = summary["solution"]
    assert solution["tasks"] == 300 and solution["children"] >= 2, solution
    assert solution["most_tasks_on_a_child"] <= 400, solution
    assert solution["peak_rss_kib"] <= solution["baseline_kib"] + 450 * small, solution

    # the sweep: every limit, in order; one task per child is the slowest, unlimited keeps 2 children;
    # 40 renders reach 1 and 10 (recycled), never 100 or 400, and the rows say so
    sweep = {row["max_tasks_per_child"]: row for row in summary["sweep"]}
    assert list(sweep) == [1, 10, 100, 400, None], summary["sweep"]
    assert sweep[1]["tasks_per_second"] < sweep[None]["tasks_per_second"], summary["sweep"]
    assert sweep[1]["children"] > sweep[None]["children"] == 2, summary["sweep"]
    assert sweep[1]["recycled"] and sweep[10]["recycled"], summary["sweep"]
    assert not sweep[100]["recycled"] and not sweep[400]["recycled"], summary["sweep"]
    assert all(row["tasks_per_second_min"] <= row["tasks_per_second_max"] for row in summary["sweep"]), sweep

    # full-HD renders: a count alone lets the busier child (>= 30 renders) keep every frame (one of slack);
    # the memory limit (256 MiB, checked after each task) replaces children and stays below 300 MiB
    count_only, memory_limit = large_runs["max_tasks_only"], large_runs["solution"]
    assert count_only["children"] == 2, count_only
    assert count_only["peak_rss_kib"] >= count_only["baseline_kib"] + 29 * large, count_only
    assert memory_limit["children"] >= 3, memory_limit
    assert memory_limit["peak_rss_kib"] <= large_runs["ceiling_mib"] * 1024, memory_limit
    assert memory_limit["peak_rss_kib"] < count_only["peak_rss_kib"], large_runs

    # a child killed mid-task: lost with the starter and with acks_late alone, run again by the solution
    kill = summary["kill"]
    assert kill["starter"]["state"] == "FAILURE" and "WorkerLostError" in kill["starter"]["error"], kill
    assert kill["acks_late_only"]["state"] == "FAILURE" and "WorkerLostError" in kill["acks_late_only"]["error"], kill
    assert kill["solution"]["state"] == "SUCCESS", kill
    assert kill["solution"]["ran_on"] != kill["solution"]["killed_pid"], kill

    # a task that kills every child: given back forever by step 5's fix, given up after a retry by the solution
    poison = summary["poison"]
    assert poison["step5"]["runs"] > poison["max_runs"] and poison["step5"]["state"] is None, poison
    assert poison["step5"]["rejected"] >= poison["max_runs"], poison
    assert 2 <= poison["solution"]["runs"] <= poison["max_runs"] and poison["solution"]["state"] == "FAILURE", poison

    # the whole worker lost: held for an hour with the default timeout; back once with the solution's
    lost = summary["lost"]
    assert lost["step5"]["unacked_after_kill"] >= 1 and lost["step5"]["back_after"] is None, lost
    assert lost["solution"]["back_after"] is not None and lost["solution"]["back_after"] <= lost["within"], lost
    assert (lost["solution"]["runs_before_kill"], lost["solution"]["runs_after_kill"]) == (1, 1), lost
    assert lost["solution"]["state"] == "SUCCESS", lost
    # prefetch: the dead worker had reserved every render with the default multiplier, two with 1
    stranded = summary["stranded"]
    assert stranded["multiplier_4"]["unacked"] > stranded["multiplier_1"]["unacked"] == 2, stranded
    assert stranded["multiplier_1"]["queued"] == stranded["multiplier_1"]["renders"] - 2, stranded

    assert images_in(notebook) == 5, "expected the two RSS charts, the two sweep charts and the safety net"


@pytest.mark.cluster  # timed against a 1 s tick with margins, as lab 04's checks: side by side like them
@pytest.mark.timeout(900)
def test_beat_notebook_draws_the_ticks_and_the_failover(monkeypatch):
    window = 8
    monkeypatch.setenv("WORKSHOP_NB_WINDOW", str(window))
    monkeypatch.setenv("WORKSHOP_NB_FAILOVER_WAIT", "10")  # at most: the failover budget (7 s) and some slack
    notebook = execute("04-beat.ipynb", monkeypatch)
    summary = summary_of(notebook)
    assert (summary["window"], summary["failover_wait"]) == (window, 10), summary
    assert (summary["tick_seconds"], summary["lock_timeout"], summary["max_loop_interval"]) == (1, 5, 1), summary

    # the starter: both beats send every tick (about 2 x window), each keeps a file, the damage is logged
    starter = summary["starter"]
    assert set(starter["senders"]) == {"beat-1", "beat-2"}, starter
    assert starter["ticks"] > window + 3, starter
    for beat in ("beat-1", "beat-2"):
        assert any(path.startswith(f"{beat}/celerybeat-schedule") for path in starter["schedule_files"]), starter
    assert any("corrupted schedule file" in line for line in starter["corrupt_log"]), starter["corrupt_log"]
    # a data file cut short: the beat cannot start (EOFError), and exits again when started once more
    assert any("EOFError" in line for line in starter["cut_log"]), starter["cut_log"]
    assert any("it exited again" in line for line in starter["cut_log"]), starter["cut_log"]

    # the solution: one sender, one tick a second (counted: the gap between two runs is the
    # worker's timing too, and a busy machine's worker ran two ticks of one sender 0.055 s
    # apart), no file on any disk
    solution = summary["solution"]
    assert len(solution["senders"]) == 1, solution
    assert window - 2 <= solution["ticks"] <= window + 1, solution
    assert solution["schedule_files"] == [], solution
    # killed, the sender falls silent; the other beat sends within lock timeout + loop + tick (7 s)
    failover = solution["failover"]
    assert failover["budget_seconds"] == 7, failover
    assert list(failover["before"]) == [failover["killed"]], failover
    assert failover["after"] and failover["killed"] not in failover["after"], failover
    assert failover["gap_seconds"] is not None and failover["gap_seconds"] <= 7, failover

    # the starter and solution timelines, the failover, and your timeline when your files ran
    expected = 3 + (summary["yours"] is not None)
    assert images_in(notebook) == expected, f"expected {expected} charts, got {images_in(notebook)}"


@pytest.mark.cluster
@pytest.mark.cpu(rollouts=5)  # the starter, the solution, behind the ALB with and without the gate, yours
@pytest.mark.timeout(1200)
def test_rollouts_notebook_05_shows_the_failures_and_the_fix(monkeypatch):
    monkeypatch.setenv("WORKSHOP_NB_REPLICAS", "3")
    notebook = execute("05-uwsgi-rollouts.ipynb", monkeypatch)
    summary = summary_of(notebook)
    assert summary["replicas"] == 3 and summary["rate"] > 0, summary

    # the starter: one rolling update fails requests, and for more than one reason
    starter = summary["starter"]
    assert starter["requests"] > 0 and starter["failed"] > 0, starter
    classes = {name: count for name, count in starter["failures_by_class"].items() if count}
    assert len(classes) >= 2, f"expected failures in at least two classes, got {classes}"
    assert sum(classes.values()) == starter["failed"], starter

    # the solution: the same rolling update loses nothing; slow requests in flight at shutdown end 200
    solution = summary["solution"]
    assert solution["requests"] > 0, solution
    if solution["failed"]:  # whole: pytest would cut a long assertion message short
        pytest.fail(f"the solution's rolling update failed requests: {json.dumps(solution, indent=1)}")
    assert not any(solution["failures_by_class"].values()), solution
    assert solution["slow_in_flight_at_shutdown_ok"] == solution["slow_in_flight_at_shutdown"], solution
    assert all(rollout["failed"] == 0 and rollout["requests"] > 0 for rollout in solution["rollouts"]), solution

    # behind the ALB: without the readiness gate requests find no registered target; with it, none fails
    alb = summary["alb"]
    assert alb["no gate"]["failures_by_class"]["no-target"] > 0, alb["no gate"]
    assert alb["readiness gate"]["failed"] == 0, alb["readiness gate"]

    # the starter, solution and no-gate timelines, and yours when your files ran
    expected = 3 + (summary["yours"] is not None)
    assert images_in(notebook) == expected, f"expected {expected} charts, got {images_in(notebook)}"
