"""The MLflow UI in headless Chromium shows a run's per-class metrics and its confusion matrix.

Needs Debian's ``chromium`` package (``/usr/bin/chromium``; ``$FTLAB_CHROMIUM`` overrides the path).
No Python driver: Chromium's own ``--dump-dom`` and ``--screenshot`` with a virtual-time budget,
which lets the React app fetch and render before the DOM is taken. Runs by default (marker
``browser``): a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import mlflow_client

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1400")


def chromium() -> str:
    path = os.environ.get("FTLAB_CHROMIUM", "/usr/bin/chromium")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"browser test needs Chromium at {path}: install it with "
                    f"`apt-get install -y chromium` (Debian) or set FTLAB_CHROMIUM", pytrace=False)
    return path


def _chromium(url: str, profile: Path, *extra: str, budget_ms: int) -> subprocess.CompletedProcess:
    cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
           f"--virtual-time-budget={budget_ms}", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def dump_dom(url: str, profile: Path, want: re.Pattern) -> str:
    """The rendered DOM of ``url``; retried with a longer budget until ``want`` matches."""
    dom = ""
    for budget in (15000, 30000, 60000):
        res = _chromium(url, profile, "--dump-dom", budget_ms=budget)
        dom = res.stdout
        if want.search(dom):
            return dom
    return dom


@pytest.fixture
def ui(tmp_path):
    from ftlab.cli.ui_cmd import group_members, start_server, stop_server

    server = start_server(0, uri=os.environ["MLFLOW_TRACKING_URI"], log_path=tmp_path / "ui.log")
    yield server
    stop_server(server)
    assert group_members(server.pgid) == []


def test_run_page_shows_per_class_metrics_and_confusion_matrix(run_experiment, ui, tmp_path):
    chromium()
    run_experiment()
    client = mlflow_client()
    exp = client.get_experiment_by_name("smoke")
    run_id = client.search_runs([exp.experiment_id])[0].info.run_id
    page = f"{ui.url}/#/experiments/{exp.experiment_id}/runs/{run_id}"

    # overview tab: the metrics table lists the per-class keys
    per_class = re.compile(r"eval/base/eval/per_class/[a-z_]+/(?:f1|precision|recall)")
    dom = dump_dom(page, tmp_path / "profile1", per_class)
    assert run_id in dom, f"run page did not render (log: {ui.log})"
    assert per_class.search(dom), "no per-class metric name on the run page"

    # artifacts tab, opened on the confusion matrix: tree node and the loaded image
    art = f"{page}/artifacts/eval/base/eval/confusion_matrix.png"
    img = re.compile(r'<img[^>]*alt="eval/base/eval/confusion_matrix\.png"[^>]*src="blob:')
    dom = dump_dom(art, tmp_path / "profile2", img)
    assert 'artifact-name="confusion_matrix.png"' in dom, "artifact tree has no confusion_matrix.png"
    assert img.search(dom), "the confusion-matrix image was not loaded in the artifact view"

    # a screenshot, kept for humans (FTLAB_BROWSER_SHOTS=<dir> copies it out)
    shot = tmp_path / "confusion_matrix_page.png"
    _chromium(art, tmp_path / "profile3", f"--screenshot={shot}", budget_ms=15000)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000  # a rendered page with a chart, not a blank one
    if os.environ.get("FTLAB_BROWSER_SHOTS"):
        dest = Path(os.environ["FTLAB_BROWSER_SHOTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, dest / shot.name)
