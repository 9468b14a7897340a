"""`make lab` in a real browser: headless Chromium opens the start-here notebook, runs its first
cell and reads what it printed, as a learner sees it.

Needs Chromium and its driver from the system packages (Debian: `apt-get install chromium
chromium-driver`); without them the test skips. Selenium gets both paths, so Selenium Manager
(which would download a browser) never runs, and the browser resolves no host but 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import psutil
import pytest

from workshop.paths import ROOT

pytestmark = pytest.mark.kit

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FIRST_LINE = "workshop ready: yes"


def system_binary(*names: str, usual: str) -> str | None:
    if Path(usual).is_file():
        return usual
    return next(filter(None, (shutil.which(name) for name in names)), None)


@pytest.fixture
def chromium(monkeypatch):
    """The system's Chromium and chromedriver, never a downloaded one."""
    browser = system_binary(*BROWSERS, usual="/usr/bin/chromium")
    driver = system_binary("chromedriver", usual="/usr/bin/chromedriver")
    if browser is None or driver is None:
        pytest.skip("needs the system's Chromium and chromedriver: apt-get install chromium chromium-driver")
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_download(*args, **kwargs):
        raise AssertionError("Selenium Manager was asked for a browser or driver: it would download one")

    monkeypatch.setattr(SeleniumManager, "binary_paths", no_download)
    monkeypatch.setenv("SE_OFFLINE", "true")
    return browser, driver


def start_browser(browser: str, driver: str, log_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        # nothing but 127.0.0.1: every other host name fails to resolve, background fetches are off
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(flag)
    service = Service(executable_path=driver, log_output=str(log_path))
    return webdriver.Chrome(service=service, options=options)


def lab_settings(folder: Path) -> dict[str, str]:
    """JupyterLab settings for the test: no autosave (the notebook stays saved without outputs),
    no news prompt; workspaces kept out of the home folder."""
    overrides = {
        "docmanager-extension/plugin": {"autosave": False},
        "apputils-extension/notification": {"fetchNews": "false"},
    }
    for name, settings in overrides.items():
        path = folder / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    return {
        "JUPYTERLAB_SETTINGS_DIR": str(folder / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"),
    }


def kernel_idle(base: str, token: str) -> bool:
    sessions = httpx.get(f"{base}/api/sessions", params={"token": token}).json()
    return any(
        session["path"].endswith("00-start-here.ipynb") and session["kernel"]["execution_state"] == "idle"
        for session in sessions
    )


def quit_browser(driver) -> None:
    """driver.quit(), then wait for chromedriver's whole process tree (Chromium forks many) to be gone."""
    tree = []
    process = driver.service.process
    if process is not None and psutil.pid_exists(process.pid):
        root = psutil.Process(process.pid)
        tree = [root, *root.children(recursive=True)]
    driver.quit()
    _, alive = psutil.wait_procs(tree, timeout=15)
    for leftover in alive:
        leftover.kill()
    psutil.wait_procs(alive, timeout=5)


@pytest.mark.cluster
@pytest.mark.timeout(600)
def test_make_lab_runs_the_first_cell_in_a_browser(chromium, make_lab, tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    screenshot = tmp_path / "jupyterlab.png"
    notebook = ROOT / "notebooks" / "00-start-here.ipynb"
    saved = notebook.read_bytes()
    with make_lab(tmp_path, env=lab_settings(tmp_path)) as lab:
        base, token = lab.base, lab.token
        driver = start_browser(*chromium, tmp_path / "chromedriver.log")
        try:
            driver.get(f"{base}/lab/tree/notebooks/00-start-here.ipynb?token={token}")
            # JupyterLab redraws the cell while the page and the kernel come up: an element found
            # a moment ago may be gone, so the waits look again, and the editor is found last.
            wait = WebDriverWait(driver, 120, poll_frequency=0.5, ignored_exceptions=[StaleElementReferenceException])
            first_input = (By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell .jp-InputArea-editor .cm-content")
            wait.until(expected_conditions.element_to_be_clickable(first_input))
            wait.until(lambda _: kernel_idle(base, token))
            editor = wait.until(expected_conditions.element_to_be_clickable(first_input))

            editor.click()
            editor.send_keys(Keys.SHIFT, Keys.ENTER)
            first_output = (By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell .jp-OutputArea-output")
            wait.until(lambda browser: FIRST_LINE in browser.find_element(*first_output).text)
            printed = driver.find_element(*first_output).text
            assert "optional, only for lab 05" in printed, printed
        except Exception as exc:
            driver.save_screenshot(str(screenshot))
            raise AssertionError(f"{type(exc).__name__}: {exc}; screenshot: {screenshot}") from exc
        finally:
            quit_browser(driver)
    assert notebook.read_bytes() == saved, "the notebook was saved during the test: it must stay without outputs"
