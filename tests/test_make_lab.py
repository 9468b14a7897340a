"""`make lab` serves JupyterLab with the start-here notebook."""

import secrets

import httpx
import pytest

from workshop.paths import ROOT
from workshop.ports import free_port
from workshop.processes import ProcessSpec, Supervisor


@pytest.mark.cluster
def test_make_lab_serves_the_start_here_notebook(tmp_path):
    port, token = free_port(), secrets.token_hex(8)
    base = f"http://127.0.0.1:{port}"
    with Supervisor() as supervisor:
        supervisor.start(
            ProcessSpec(
                name="make-lab",
                command=[
                    "make",
                    "-s",
                    "lab",
                    f"JUPYTER_PORT={port}",
                    f"JUPYTER_ARGS=--no-browser --ip=127.0.0.1 --IdentityProvider.token={token}",
                ],
                cwd=ROOT,
                log_path=tmp_path / "jupyter.log",
                ready_url=f"{base}/api/status?token={token}",
                timeout=120,
            )
        )
        response = httpx.get(f"{base}/api/contents/notebooks/00-start-here.ipynb", params={"token": token})
        assert response.status_code == 200
        notebook = response.json()
        assert notebook["type"] == "notebook" and notebook["content"]["cells"]
