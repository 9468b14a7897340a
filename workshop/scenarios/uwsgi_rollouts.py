"""Lab 05: a rolling update of 3 cms pods under steady load, rehearsed locally with real
uWSGI and nginx processes (workshop.rollout). The failures, counted by class, are the
evidence of the observe step. `workshop start 05` runs the same pods without a rollout."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from workshop.curriculum import Lab
from workshop.processes import ServiceFailed, raise_keyboard_interrupt_on_sigterm
from workshop.rollout.load import SLOW_SECONDS
from workshop.rollout.manifest import ManifestError
from workshop.rollout.pod import Pod
from workshop.rollout.rehearsal import Rehearsal
from workshop.rollout.report import print_summary
from workshop.rollout.timeline import Timeline


def demo(lab: Lab, files_dir: Path, console: Console) -> None:
    raise_keyboard_interrupt_on_sigterm()
    with console.status("starting the services and 3 pods..."):
        rehearsal = Rehearsal(lab, files_dir).__enter__()
    try:
        with console.status("one rolling update under load..."):
            timeline = rehearsal.run(rollouts=1)
    finally:
        rehearsal.close()
    print_summary(timeline, console)
    console.print(f"Logs of every pod: {rehearsal.logs_dir}")


def start(lab: Lab, files_dir: Path, console: Console, errors: Console) -> int:
    """Your pods (your uwsgi.ini, nginx.conf and Deployment) behind the Service, no rollout:
    click around, watch them with `workshop top`; Ctrl-C stops everything. The exit code."""
    raise_keyboard_interrupt_on_sigterm()
    try:
        rehearsal = Rehearsal(lab, files_dir)
    except ManifestError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        return 2
    try:
        with console.status(f"starting the services and {rehearsal.replicas} pods..."):
            rehearsal.__enter__()
        table = Table(title=f"Lab {lab.code}: your Deployment's pods ({files_dir.name})")
        for column in ("pod", "containers", "ports", "logs"):
            table.add_column(column)
        for pod in rehearsal.live_pods():
            table.add_row(
                pod.name,
                ", ".join(f"{c.name} ({c.stop_signal.name} to stop)" for c in rehearsal.deployment.containers),
                ", ".join(f"{inside} -> {outside}" for inside, outside in pod.layout.ports.items()),
                str(rehearsal.logs_dir / f"{pod.name}-*.log"),
            )
        console.print(table)
        console.print(
            f"Open [bold]{rehearsal.lb.url}[/bold] (the Service, as kube-proxy makes it) and log in as alice / "
            "workshop. Watch the pods, their probes and the load balancer from a second terminal: "
            "[bold]workshop top[/bold]. `workshop rollout 05` rolls them out under load. Ctrl-C stops everything."
        )
        while True:
            time.sleep(1)
    except ServiceFailed as exc:
        errors.print(f"[red]error:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("stopping...")
        return 0
    finally:
        rehearsal.close()


# -- lab 05's check of SIGTERM with requests in flight ------------------------------------


# The stop signal must reach uWSGI with at least this long left of every slow request (the
# master's handler and its signals to the workers take milliseconds; a busy machine, more).
SIGNAL_LEAD_SECONDS = 1.0
# Slow requests of SLOW_SECONDS, then twice and four times as long: a trial whose stop signal
# came too late to tell (the machine was busy) is run again with longer requests.
SIGTERM_TRIAL_SECONDS = (SLOW_SECONDS, 2 * SLOW_SECONDS, 4 * SLOW_SECONDS)


@dataclass
class SigtermResult:
    """Slow requests sent straight to one pod, then the uWSGI container stopped as the
    kubelet stops it (its preStop, then its stop signal) while they run."""

    statuses: list[int | str]  # each request's status, or its error
    exited: bool  # the uWSGI master exited (rather than reloading)
    exit_code: int | None
    seconds_to_exit: float | None
    sequence: str  # what was done to uWSGI, in order
    seconds: float  # how long each slow request takes on its own
    # how long the slow requests still had to run when the stop signal was sent (None: never
    # sent, uWSGI had exited first); below SIGNAL_LEAD_SECONDS they may have ended before it landed
    signal_lead: float | None
    pod: str = ""  # the name of the trial's pod (one of rehearsal.pods)

    @property
    def all_ok(self) -> bool:
        return all(status == 200 for status in self.statuses)

    @property
    def conclusive(self) -> bool:
        """Did the stop signal land while every request still ran? A pass without it proves
        nothing: a preStop's graceful stop may have let them finish before the signal came."""
        return self.signal_lead is not None and self.signal_lead >= SIGNAL_LEAD_SECONDS


def sigterm_in_flight(rehearsal: Rehearsal, requests: int = 4, pod: Pod | None = None) -> SigtermResult:
    """`sigterm_trial` until it tells: a failure counts at once, a pass only if the stop signal
    landed while the requests ran; if it came too late, the trial runs again on a new pod with
    longer requests. The last trial's result (inconclusive only if all of them were)."""
    for seconds in SIGTERM_TRIAL_SECONDS:
        result = sigterm_trial(rehearsal, requests, seconds, pod)
        if not (result.all_ok and result.exited) or result.conclusive:
            break
        pod = None
    return result


def sigterm_trial(rehearsal: Rehearsal, requests: int, seconds: float, pod: Pod | None = None) -> SigtermResult:
    """What stopping a pod's uWSGI container does to requests it is serving: a pod of its own
    (not in the Service), `requests` slow requests of `seconds` through its sidecar, then, once
    every one of them has started, the kubelet's sequence for the uWSGI container: its preStop
    hook (the sleeps in it skipped: the requests are already in flight), then its stop signal.
    Only uWSGI is stopped: the sidecar stays up to carry the answers back. `pod`: one
    created out of the Service beforehand (it may have started while other things ran)."""
    pod = pod or rehearsal.create_pod(in_service=False)
    try:
        rehearsal.wait_until(lambda: pod.serving, 60, f"pod {pod.name}")
        statuses: list[int | str] = []
        url = f"http://127.0.0.1:{pod.service_port}/healthz/slow?seconds={seconds:g}"

        def one() -> None:
            try:
                statuses.append(httpx.get(url, timeout=seconds + 30).status_code)
            except httpx.HTTPError as exc:
                statuses.append(type(exc).__name__)

        threads = [threading.Thread(target=one, daemon=True) for _ in range(requests)]
        sent = rehearsal.clock.now()  # none of them can end before sent + seconds
        for thread in threads:
            thread.start()
        container = rehearsal.deployment.container("uwsgi")
        uwsgi = pod.processes[container.name]
        # In flight means a worker is running them: wait for cms to log each one's start
        # (a fixed pause is not enough on a busy machine; queued requests are not in flight).
        started = lambda: uwsgi.spec.log_path.read_text(errors="replace").count("slow request started")  # noqa: E731
        rehearsal.wait_until(lambda: started() >= requests, 60, f"{requests} slow requests on {pod.name}")
        signalled = time.monotonic()
        steps = []
        if container.pre_stop:
            steps.append("its preStop" + (" (its sleep skipped)" if container.pre_stop.seconds else ""))
        steps.append(f"{container.stop_signal.name} ({container.stop_signal_from})")
        deadline = signalled + seconds + 15  # past the wait below: the check sees uWSGI still running
        stopper = threading.Thread(target=pod.stop_container, args=(container, deadline, True), daemon=True)
        stopper.start()
        for thread in threads:
            thread.join(seconds + 35)
        while uwsgi.running() and time.monotonic() - signalled < seconds + 10:
            time.sleep(0.1)
        exited = not uwsgi.running()
        # rehearsal.timeline holds a copy of the events after a rollout: read them as they are now
        stop_signal = Timeline(events=list(rehearsal.events)).first(pod.name, "stop-signal")
        return SigtermResult(
            statuses=statuses,
            exited=exited,
            exit_code=uwsgi.wait(1) if exited else None,
            seconds_to_exit=round(time.monotonic() - signalled, 2) if exited else None,
            sequence=", then ".join(steps),
            seconds=seconds,
            signal_lead=round(sent + seconds - stop_signal, 2) if stop_signal is not None else None,
            pod=pod.name,
        )
    finally:
        pod.gone.set()
        for process in pod.processes.values():
            rehearsal.stop_process(process)
