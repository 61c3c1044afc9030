"""A run's status comes from what it recorded: a SIGKILLed run is INCOMPLETE, never FINISHED."""

from __future__ import annotations

import json
import subprocess
import sys

from test_reliability import KILLED_RUN

from conftest import ROOT, mlflow_client


def _kill_mid_run(run_dir, *extra):
    code = KILLED_RUN.format(tests=str(ROOT / "tests"), run_dir=str(run_dir), extra=list(extra))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]


def test_a_sigkilled_folder_only_run_is_incomplete_with_the_command_that_finishes_it(tmp_path):
    from ftlab.report import build_report
    from ftlab.runs import find_runs

    run_dir = tmp_path / "killed"
    _kill_mid_run(run_dir, "tracking.enabled=false")
    assert not (run_dir / "error.txt").exists()  # nothing said it failed: it just stopped
    (run,) = find_runs(str(run_dir))
    assert run.status == "INCOMPLETE"
    assert "2 of 4 stages done" in run.status_note and f"resume={run_dir}" in run.status_note
    html, md = build_report(str(run_dir), tmp_path / "report")
    text = md.read_text()
    assert "INCOMPLETE" in text and f"resume={run_dir}" in text and "FINISHED" not in text


def test_a_killed_run_still_running_in_mlflow_is_shown_incomplete(tmp_path):
    from ftlab.runs import find_run

    run_dir = tmp_path / "killed"
    _kill_mid_run(run_dir)
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    assert mlflow_client().get_run(run_id).info.status == "RUNNING"  # what MLflow believes
    rec = find_run(run_id)
    assert rec.status == "INCOMPLETE" and f"resume={run_dir}" in rec.status_note


def test_status_follows_the_runs_own_record(run_experiment, tmp_path):
    from ftlab.runs import folder_status, mark_process
    from ftlab.tracking import journal

    _, finished = run_experiment("tracking.enabled=false")
    assert folder_status(finished) == ("FINISHED", "")
    live = tmp_path / "live"
    live.mkdir()
    (live / "config.yaml").write_text((finished / "config.yaml").read_text())
    mark_process(live)  # this very process runs it
    assert folder_status(live)[0] == "RUNNING"
    (live / "process.json").write_text(json.dumps({**json.loads((live / "process.json").read_text()),
                                                    "start_tick": "1"}))  # the pid was reused since
    assert folder_status(live)[0] == "INCOMPLETE"
    journal.append(live, "end", status="FAILED", ts=0)
    assert folder_status(live)[0] == "FAILED"
