"""A running topology: services, N cms nodes (uWSGI) behind a round-robin load balancer
(nginx), and Procfile processes (worker, beat). Everything stops when the cluster does.

    with Cluster(find_lab("01"), files_dir=...) as cluster:
        httpx.get(cluster.url + "/healthz/ready")
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import django

from workshop import nginx, runs
from workshop.curriculum import Lab
from workshop.layers import find_in_layers, layer_dirs, settings_modules
from workshop.local_writes import LocalWrite, read_local_writes, sqlite_files
from workshop.paths import PYTHON, ROOT, runs_dir
from workshop.ports import free_port, retry_port_clash
from workshop.processes import ManagedProcess, ProcessSpec, ServiceFailed, Supervisor
from workshop.procfile import BASE_PROCFILE, read_procfile, resolve_command
from workshop.services import CRM, Database, DatabaseTemplate, Redis, start_crm, start_redis, template_key
from workshop.waiting import WaitTimedOut, wait_until

MACHINE_DIR = Path(__file__).resolve().parent / "machine"  # its sitecustomize watches local writes


@dataclass
class Node:
    """One cms node: a uWSGI master with several workers and a local disk of its own."""

    name: str
    port: int
    disk: Path
    stats_port: int = 0  # uWSGI's stats server (JSON per worker: requests, pid, status), read by `workshop top`
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Cluster:
    def __init__(
        self,
        lab: Lab,
        files_dir: Path | None = None,
        nodes: int = 2,
        procfile_processes: tuple[str, ...] | None = None,
        crm_token_limit: int = 1,
        run_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        earlier_files: dict[str, Path] | None = None,
    ):
        self.lab = lab
        self.files_dir = files_dir or lab.path
        self.layers = layer_dirs(lab, self.files_dir, earlier_files)
        self.procfile_processes = lab.processes if procfile_processes is None else procfile_processes
        self.crm_token_limit = crm_token_limit
        self.extra_env = extra_env or {}
        runs.prune_old_runs(keep=runs.KEEP_RUNS)
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix=f"lab{lab.code}-", dir=runs_dir()))
        self._in_use = runs.hold_run_dir(self.run_dir)
        self.logs_dir = self.run_dir / "logs"
        self.nodes = [
            Node(name=f"node-{i}", port=free_port(), disk=self.run_dir / f"node-{i}", stats_port=free_port())
            for i in range(1, nodes + 1)
        ]
        self.lb_port = free_port()
        self.supervisor = Supervisor()
        self.secret_key = "workshop-run-" + secrets.token_hex(16)
        self.redis: Redis | None = None
        self.database: Database | None = None
        self.crm: CRM | None = None
        self.lb: ManagedProcess | None = None
        self.procfile_runs: dict[str, ManagedProcess] = {}
        self.instance_of_pid: dict[int, str] = {}  # every Procfile process ever started, by pid
        self.started = False  # set once start() is done: from then on the running description is kept current

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> "Cluster":
        """Start the services and the database side by side, then the nodes, the load
        balancer and the Procfile processes side by side, each waited on until ready."""
        try:
            self.redis, self.database, self.crm = side_by_side(
                lambda: retry_port_clash(lambda _: start_redis(self.supervisor, self.run_dir)),
                lambda: Database(self.run_dir, template=self.database_template()),
                lambda: retry_port_clash(
                    lambda _: start_crm(self.supervisor, self.run_dir, token_limit=self.crm_token_limit)
                ),
            )
            side_by_side(
                *(lambda node=node: self.start_node(node) for node in self.nodes),
                *([self.start_load_balancer] if self.nodes else []),
                *(
                    lambda name=name, instance=instance: self.start_procfile_process(name, instance=instance)
                    for instance, name in procfile_instances(self.procfile_processes)
                ),
            )
            self.started = True
            self.publish()
        except BaseException:
            self.stop()
            raise
        return self

    def database_template(self) -> DatabaseTemplate:
        """The migrated and seeded database this run copies, made once per content of the
        migrations, the seed command and the settings (cms's and the layers')."""
        cms = ROOT / "cms" if (ROOT / "cms").is_dir() else Path(__file__).resolve().parent.parent / "cms"
        files = [*cms.glob("*/migrations/*.py"), *cms.glob("*/management/commands/*.py"), cms / "settings.py"]
        files += [
            path for module in settings_modules(self.lab) if (path := find_in_layers(self.layers, f"{module}.py"))
        ]
        key = template_key(files, django.get_version(), ",".join(settings_modules(self.lab)))

        def build(url: str) -> None:
            self.manage("migrate", "--noinput", database_url=url)
            self.manage("seed_workshop", database_url=url)

        return DatabaseTemplate(key, build)

    def stop(self) -> None:
        self.started = False
        runs.remove_description(self.run_dir.name)
        self.supervisor.close()
        if self.database:
            self.database.drop()
        if self.redis:
            self.redis.release()
        self._in_use.close()  # its folder may go now, when later runs prune

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The load balancer: where users (and checks) send their requests."""
        return f"http://127.0.0.1:{self.lb_port}"

    # -- environment -----------------------------------------------------------
    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "DJANGO_SETTINGS_MODULE": "cms.settings",
            "PYTHONPATH": os.pathsep.join(str(p) for p in [*self.layers, ROOT]),
            "PYTHONUNBUFFERED": "1",
            "SECRET_KEY": self.secret_key,
            "DATABASE_URL": self.database.url if self.database else "",
            "REDIS_URL": self.redis.url if self.redis else "",
            "CRM_URL": self.crm.url if self.crm else "",
            # the harness's own folder for manage.py; every machine gets its own disk instead
            "CMS_DATA_DIR": str(self.run_dir / "harness"),
            "CMS_SETTINGS_LAYERS": ",".join(settings_modules(self.lab)),
            **self.extra_env,
        }
        env.update(overrides)
        return env

    def machine_env(self, name: str, disk: Path) -> dict[str, str]:
        """The environment of a process that stands for a machine of its own (a node, a
        worker, a beat, a pod): its name, and only its own disk, as its data folder, home
        and temporary folder. Nothing else is shared but the services (database, Redis,
        CRM). What it writes to a local disk, wherever, is logged (local_writes)."""
        for folder in ("home", "tmp"):
            (disk / folder).mkdir(parents=True, exist_ok=True)
        return self.env(
            CMS_NODE_NAME=name,
            CMS_NODE_DIR=str(disk),
            CMS_DATA_DIR=str(disk),
            HOME=str(disk / "home"),
            TMPDIR=str(disk / "tmp"),
            PYTHONPATH=os.pathsep.join(str(p) for p in [MACHINE_DIR, *self.layers, ROOT]),
            WORKSHOP_LOCAL_WRITES=str(self.local_writes_log),
        )

    @property
    def local_writes_log(self) -> Path:
        return self.logs_dir / "local-writes.jsonl"

    def local_writes(self, since: float = 0.0) -> list[LocalWrite]:
        """What the machines wrote to a local disk since `since` (time.time()), wherever:
        every write but those to the database file (the database server's disk)."""
        return read_local_writes(self.local_writes_log, allowed=sqlite_files(self.database.url), since=since)

    def manage(self, *args: str, database_url: str | None = None) -> str:
        """Run a Django management command against this cluster's database (or another)."""
        overrides = {"DATABASE_URL": database_url} if database_url else {}
        result = subprocess.run(
            [str(PYTHON), "-m", "django", *args],
            env={**os.environ, **self.env(**overrides)},
            cwd=self.run_dir,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ServiceFailed(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    # -- nodes -----------------------------------------------------------------
    def start_node(self, node: Node) -> Node:
        """Start a node's uWSGI; if its ports were taken meanwhile, on fresh ones (and the
        load balancer, if it runs, learns the node's new address)."""
        old_port = node.port

        def attempt(number: int) -> Node:
            if number:
                node.port, node.stats_port = free_port(), free_port()
            return self._start_node(node)

        retry_port_clash(attempt)
        if node.port != old_port and self.lb:
            self.reload_load_balancer()
        return node

    def _start_node(self, node: Node) -> Node:
        node.disk.mkdir(parents=True, exist_ok=True)
        command = [
            *resolve_command(self.procfile()["web"]),
            "--http-socket",
            f"127.0.0.1:{node.port}",
            # pyuwsgi in a virtualenv cannot re-exec itself without this (uwsgi issue 2478)
            "--binary-path",
            str(PYTHON),
            "--stats",
            f"127.0.0.1:{node.stats_port}",
        ]
        node.process = self.supervisor.start(
            ProcessSpec(
                name=node.name,
                command=command,
                env=self.machine_env(node.name, node.disk),
                cwd=node.disk,  # a vendor SDK's "current directory" is the node's own disk
                log_path=self.logs_dir / f"{node.name}.log",
                ready_url=f"{node.url}/healthz/ready",
                # SIGTERM is a brutal *reload* in uWSGI 2.0; SIGINT stops it.
                stop_signal=signal.SIGINT,
            )
        )
        self.publish()
        return node

    @property
    def workers_per_node(self) -> int:
        """uWSGI worker processes per node, as the Procfile's web line asks (--processes N)."""
        web = self.procfile()["web"]
        for flag in ("--processes", "-p", "--workers"):
            if flag in web:
                return int(web[web.index(flag) + 1])
        return 1

    def stop_node(self, node: Node) -> None:
        if node.process:
            self.supervisor.stop(node.process)
            node.process = None
            self.publish()

    def restart_node(self, node: Node, wipe_disk: bool = False) -> Node:
        """Stop a node and start it again; `wipe_disk` is a replaced machine or pod."""
        self.stop_node(node)
        if wipe_disk:
            shutil.rmtree(node.disk, ignore_errors=True)
        return self.start_node(node)

    # -- load balancer -----------------------------------------------------------
    def load_balancer_conf(self) -> str:
        lb_dir = self.run_dir / "lb"
        servers = "\n".join(
            # max_fails=0: strict round-robin, a dead node is not skipped (a cloud LB's view)
            f"        server 127.0.0.1:{node.port} max_fails=0;"
            for node in self.nodes
        )
        return nginx.main_conf(
            lb_dir,
            self.logs_dir,
            "lb",
            f"""    upstream cms {{
{servers}
        # nginx >= 1.29.7 keeps upstream connections alive by default; uWSGI's
        # http-socket closes each one after its response, so a reused connection is
        # reset and (with retries off) the user gets a 502. One connection per request.
        keepalive 0;
    }}
    server {{
        listen 127.0.0.1:{self.lb_port};
        location = /_lb/health {{ return 200 "ok\\n"; }}
        location / {{
            proxy_pass http://cms;
            # An AWS ALB does not retry another target: neither does this one.
            proxy_next_upstream off;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
""",
        )

    def start_load_balancer(self) -> None:
        def attempt(number: int) -> None:
            if number:
                self.lb_port = free_port()
            self._start_load_balancer()

        retry_port_clash(attempt)

    def reload_load_balancer(self) -> None:
        """New upstreams without dropping connections: nginx re-reads its file on SIGHUP."""
        import psutil

        (self.run_dir / "lb" / "nginx.conf").write_text(self.load_balancer_conf())
        old_workers = psutil.Process(self.lb.pid).children()
        self.lb.send_signal(signal.SIGHUP)
        # the reload is done when the old workers, with the old upstreams, have exited
        psutil.wait_procs(old_workers, timeout=10)

    def _start_load_balancer(self) -> None:
        lb_dir = self.run_dir / "lb"
        lb_dir.mkdir(parents=True, exist_ok=True)
        conf = lb_dir / "nginx.conf"
        conf.write_text(self.load_balancer_conf())
        self.lb = self.supervisor.start(
            ProcessSpec(
                name="load-balancer",
                command=nginx.command(lb_dir, conf),
                log_path=self.logs_dir / "lb.log",
                ready_url=f"{self.url}/_lb/health",
                timeout=30,
            )
        )

    # -- Procfile processes ------------------------------------------------------
    def procfile(self) -> dict[str, list[str]]:
        return read_procfile(find_in_layers(self.layers, "Procfile", default=BASE_PROCFILE))

    def start_procfile_process(
        self,
        name: str,
        extra_args: tuple[str, ...] = (),
        ready_pattern: str = r"ready\.|beat: Starting",
        instance: str | None = None,
    ) -> ManagedProcess:
        """Start one Procfile entry (worker, beat) with the cluster's environment, as
        `instance` (default: the entry's name; "beat-2" for a second beat) with a disk of
        its own. `extra_args` are appended to its command line (a sweep over a flag)."""
        entries = self.procfile()
        if name not in entries:
            raise ServiceFailed(f"the Procfile has no {name!r} entry (it has: {', '.join(entries)})")
        if "--detach" in entries[name]:  # celery's daemon mode: forks into a session of its own, out of reach
            raise ServiceFailed(f"the Procfile's {name!r} line has --detach: a daemon escapes the workshop: remove it")
        instance = instance or name
        self.stop_procfile_process(instance)
        disk = self.run_dir / instance
        disk.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{instance}.log"
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        process = self.supervisor.start(
            ProcessSpec(
                name=instance,
                command=[*resolve_command(entries[name]), *extra_args],
                env=self.machine_env(instance, disk),
                cwd=disk,
                log_path=log_path,
            )
        )
        self.procfile_runs[instance] = process
        self.instance_of_pid[process.pid] = instance
        wait_for_log(log_path, ready_pattern, process, offset=log_offset)
        self.publish()
        return process

    def start_instances(self, entry: str, instances: tuple[str, ...]) -> None:
        """Start `entry` as each of `instances` at once (a Deployment's new pods start together)."""
        side_by_side(*(lambda name=name: self.start_procfile_process(entry, instance=name) for name in instances))

    def stop_procfile_process(self, name: str) -> None:
        process = self.procfile_runs.pop(name, None)
        if process:
            self.supervisor.stop(process)
            self.publish()

    def last_error(self, lines: int = 12) -> str | None:
        """The end of the newest Python traceback any process logged (where its cause is)."""
        newest: tuple[float, str] | None = None
        for log in self.logs_dir.glob("*.log"):
            text = log.read_text(errors="replace")
            start = text.rfind("Traceback (most recent call last)")
            if start != -1 and (newest is None or log.stat().st_mtime > newest[0]):
                newest = (log.stat().st_mtime, f"{log.name}:\n{_traceback_end(text[start:], lines)}")
        return newest[1] if newest else None

    # -- the running description, read by `workshop top` from another terminal ----------
    def publish(self) -> None:
        """Write (or rewrite, after a node or process changed) the description of this running cluster."""
        if not self.started:
            return
        runs.write_description(
            runs.RunningCluster(
                run=self.run_dir.name,
                lab=self.lab.code,
                title=self.lab.title,
                owner=runs.ProcessRef.of(os.getpid()),
                url=self.url if self.lb else None,
                nginx_conf=str(self.run_dir / "lb" / "nginx.conf") if self.lb else None,
                redis_url=self.redis.url,
                logs_dir=str(self.logs_dir),
                nodes=[
                    runs.NodeRef(
                        node.name, node.url, node.process.pid if node.process else None, f"127.0.0.1:{node.stats_port}"
                    )
                    for node in self.nodes
                ],
                processes=[
                    runs.ProcfileRef(instance, process.pid, process.spec.command)
                    for instance, process in self.procfile_runs.items()
                ],
            )
        )

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, address, log) rows for the CLI."""
        rows = [("load balancer", self.url, str(self.logs_dir / "lb.log"))]
        rows += [(node.name, node.url, str(self.logs_dir / f"{node.name}.log")) for node in self.nodes]
        rows.append(("redis", self.redis.url, "embedded" if self.redis.embedded else "external"))
        rows.append(("database", self.database.url, self.database.kind))
        rows.append(("crm", self.crm.url, str(self.logs_dir / "crm.log")))
        rows += [(name, "-", str(self.logs_dir / f"{name}.log")) for name in self.procfile_runs]
        return rows


def side_by_side(*starts):
    """Run the start functions in threads and return their results in order. Every one
    finishes (or fails) before this returns, so nothing is left starting after an error;
    the first error is raised."""
    from concurrent.futures import ThreadPoolExecutor

    if not starts:
        return []
    with ThreadPoolExecutor(max_workers=len(starts)) as pool:
        futures = [pool.submit(start) for start in starts]
    errors = [future.exception() for future in futures if future.exception()]
    if errors:
        raise errors[0]
    return [future.result() for future in futures]


def procfile_instances(names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(instance, entry) pairs: an entry listed twice runs twice, as beat-1 and beat-2."""
    counts = Counter(names)
    seen: Counter[str] = Counter()
    pairs = []
    for name in names:
        seen[name] += 1
        pairs.append((f"{name}-{seen[name]}" if counts[name] > 1 else name, name))
    return pairs


def _traceback_end(text: str, lines: int) -> str:
    """The last `lines` lines of the traceback that `text` starts with, up to its error line."""
    block = text.splitlines()
    for index, line in enumerate(block[1:], start=1):
        if line.strip() and not line.startswith((" ", "Traceback", "During handling", "The above exception")):
            block = block[: index + 1]
            break
    return "\n".join(block[-lines:])


def wait_for_log(path: Path, pattern: str, process: ManagedProcess, timeout: float = 60, offset: int = 0) -> None:
    """Wait until the log, past `offset` bytes (an earlier run's lines), matches `pattern`."""
    regex = re.compile(pattern)

    def logged() -> bool:
        if not path.exists():
            return False
        with open(path, "rb") as log:
            log.seek(offset)
            return bool(regex.search(log.read().decode(errors="replace")))

    try:
        wait_until(logged, f"{process.name} logging /{pattern}/", timeout, 0.1, [path], lambda: not process.running())
    except WaitTimedOut as exc:
        raise ServiceFailed(str(exc)) from None
