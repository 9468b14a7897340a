"""The Cluster: a lab's services (Redis, the CRM) and database started side by side,
then its nodes, load balancer and Procfile processes, all under one supervisor and all
stopped with it. It gives every process the run's environment (settings layers, service
URLs, secret key), and a process that stands for a machine of its own only its own disk,
with its local writes logged. Nodes and the load balancer (nodes.py), Procfile processes
(procfile_processes.py) and the running description (description.py) are its parts.
"""

from __future__ import annotations

import ast
import os
import secrets
import subprocess
import tempfile
from pathlib import Path

import django

from workshop import runs
from workshop.curriculum import Lab
from workshop.layers import find_in_layers, layer_dirs, settings_modules
from workshop.local_writes import LocalWrite, read_local_writes, sqlite_files
from workshop.paths import PYTHON, ROOT, runs_dir
from workshop.ports import free_port, retry_port_clash
from workshop.processes import ManagedProcess, ServiceFailed, Supervisor
from workshop.services import CRM, Database, DatabaseTemplate, Redis, start_crm, start_redis, template_key
from workshop.topology.description import DescriptionMixin
from workshop.topology.helpers import procfile_instances, side_by_side, traceback_end
from workshop.topology.nodes import Node, NodesMixin
from workshop.topology.procfile_processes import ProcfileMixin

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # workshop/
MACHINE_DIR = PACKAGE_DIR / "machine"  # its sitecustomize watches local writes
VALUE_MARKER = "WORKSHOP-VALUE"  # what shell_value reads after, in the shell's output


class Cluster(NodesMixin, ProcfileMixin, DescriptionMixin):
    """One run of a lab: its services, database, nodes, load balancer and Procfile processes."""

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
        cms = ROOT / "cms" if (ROOT / "cms").is_dir() else PACKAGE_DIR.parent / "cms"
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
            # the demo users log in hundreds of times per test run (see cms/settings.py)
            "CMS_FAST_PASSWORD_HASHER": "1",
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

    def shell_value(self, script: str, expression: str):
        """Run `script` in `manage.py shell` against this cluster, then evaluate `expression`
        there: its value, a Python literal (numbers, strings, None, lists, tuples, dicts)."""
        code = f"{script}\nprint({VALUE_MARKER!r}, repr({expression}))"
        return ast.literal_eval(self.manage("shell", "-c", code).split(VALUE_MARKER, 1)[1].strip())

    def last_error(self, lines: int = 12) -> str | None:
        """The end of the newest Python traceback any process logged (where its cause is)."""
        newest: tuple[float, str] | None = None
        for log in self.logs_dir.glob("*.log"):
            text = log.read_text(errors="replace")
            start = text.rfind("Traceback (most recent call last)")
            if start != -1 and (newest is None or log.stat().st_mtime > newest[0]):
                newest = (log.stat().st_mtime, f"{log.name}:\n{traceback_end(text[start:], lines)}")
        return newest[1] if newest else None
