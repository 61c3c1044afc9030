"""``ftlab ui``: the MLflow server over the run's store, its REST API, and a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from conftest import ROOT, mlflow_client


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


@pytest.fixture
def ui_server(tmp_path):
    """Start the UI server over the test's store; stop it by its process group afterwards."""
    from ftlab.cli.ui_cmd import group_members, start_server, stop_server

    started = []

    def _start():
        server = start_server(0, uri=os.environ["MLFLOW_TRACKING_URI"], log_path=tmp_path / "ui.log")
        started.append(server)
        return server

    yield _start
    for server in started:
        stop_server(server)
        assert group_members(server.pgid) == []


def test_ui_serves_the_runs_metrics_and_artifacts_and_stops_cleanly(run_experiment, ui_server):
    from ftlab.cli.ui_cmd import group_members, stop_server

    run_experiment()
    client = mlflow_client()
    exp = client.get_experiment_by_name("smoke")
    run_id = client.search_runs([exp.experiment_id])[0].info.run_id
    server = ui_server()
    assert len(group_members(server.pgid)) <= 3  # job execution off: cli + uvicorn worker
    base = server.url
    found = _post(f"{base}/api/2.0/mlflow/runs/search",
                  {"experiment_ids": [exp.experiment_id], "max_results": 10})["runs"]
    assert [r["info"]["run_id"] for r in found] == [run_id]
    got = _get(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]
    metrics = {m["key"]: m["value"] for m in got["data"]["metrics"]}
    local = client.get_run(run_id).data.metrics
    for key in ("eval/base/eval/per_class/cardiovascular_pulmonary/f1",
                "eval/tuned/eval/lenient/macro_f1", "compare/eval/mcnemar_p",
                "compare/eval/macro_f1_delta_ci_low"):
        assert metrics[key] == pytest.approx(local[key])
    q = urllib.parse.urlencode({"run_id": run_id, "path": "eval/base/eval"})
    files = {f["path"] for f in _get(f"{base}/api/2.0/mlflow/artifacts/list?{q}")["files"]}
    assert "eval/base/eval/confusion_matrix.png" in files
    q = urllib.parse.urlencode({"run_uuid": run_id, "path": "eval/base/eval/confusion_matrix.png"})
    with urllib.request.urlopen(f"{base}/get-artifact?{q}", timeout=30) as resp:
        assert resp.read(8) == b"\x89PNG\r\n\x1a\n"
    members = group_members(server.pgid)
    assert server.proc.pid in members
    t0 = time.monotonic()
    stop_server(server)
    assert time.monotonic() - t0 < 20
    assert server.proc.returncode is not None
    assert group_members(server.pgid) == []
    assert all(not os.path.exists(f"/proc/{pid}") or _zombie(pid) for pid in members)


def _zombie(pid: int) -> bool:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ftlab_ui_command_prints_url_and_stops_its_group_on_signal(tmp_path, sig):
    from ftlab.cli.ui_cmd import free_port, group_members

    port = free_port()
    code = "import sys; from ftlab.cli import main; sys.exit(main(['ui', '--port', sys.argv[1]]))"
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "process group" in line:
                break
        text = "".join(lines)
        assert f"MLflow UI: http://127.0.0.1:{port}" in text, text
        pgid = int(text.split("process group ")[1].split(";")[0])
        assert group_members(pgid)
        assert _get(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=5")
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        assert group_members(pgid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_busy_port_is_a_clear_error(capsys):
    import socket

    from ftlab.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
