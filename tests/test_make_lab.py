"""`make lab` serves JupyterLab with the start-here notebook."""

import httpx
import pytest


@pytest.mark.cluster
def test_make_lab_serves_the_start_here_notebook(make_lab, tmp_path):
    with make_lab(tmp_path) as lab:
        response = httpx.get(f"{lab.base}/api/contents/notebooks/00-start-here.ipynb", params={"token": lab.token})
        assert response.status_code == 200
        notebook = response.json()
        assert notebook["type"] == "notebook" and notebook["content"]["cells"]
