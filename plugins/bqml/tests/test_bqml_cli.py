"""The whole experiment through the ftlab CLI against the fake; MLflow holds ftlab's and native metrics."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ftlab_bqml.testing import ftlab_command as _ftlab

ROOT = Path(__file__).resolve().parents[3]


def test_cli_full_run_against_fake_logs_to_mlflow(fake_bq, tmp_path):
    from mlflow.tracking import MlflowClient  # a dependency of ftlab: no skip

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = _ftlab() + ["+experiment=mtsamples17_bqml"] + [
        "backend.project=test-project", "backend.dataset=ftlab_ds", f"backend.api_endpoint={fake_bq.url}",
        "backend.poll_interval_s=0.05", "backend.poll_max_interval_s=0.1", "backend.progress=false",
        "backend.row_retry_backoff_s=0.01", "data.max_train_rows=120", "data.max_eval_rows=40",
        "eval.bootstrap_samples=50", f"tracking.uri={db}", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, MLFLOW_TRACKING_URI=db))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=db)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    metrics = runs[0].data.metrics
    for key in ("eval/base/eval/macro_f1", "eval/tuned/eval/macro_f1", "native/base/eval/macro_f1",
                "native/tuned/eval/macro_f1", "time/tune_s"):
        assert key in metrics, (key, sorted(metrics))
    assert any(k.startswith("native/tuned/eval/per_class/") for k in metrics)
    assert any(k.startswith("cost/bytes_billed") for k in metrics)
    assert runs[0].data.tags["bqml.tune_job_id"].endswith("_tune")
    assert (tmp_path / "run" / "train" / "bqml_job.json").exists()
    calls = fake_bq.calls_per_statement()
    assert calls["create_tuned_model"]["jobs.insert"] == 1 and calls["upload"]["upload"] == 2
    assert runs[0].info.status == "FINISHED" and runs[0].data.params["backend.name"] == "bqml"


def test_cli_run_with_faults_killed_during_tuning_then_resumed(fake_bq, tmp_path):
    """Faults on, the ftlab process killed while tuning, resumed: one tuning job, every row kept."""
    import json
    import time

    from mlflow.tracking import MlflowClient

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    persistent, transient = ["eval-4", "eval-17"], ["eval-2", "eval-9", "eval-30"]
    fake_bq.faults.update(row_ids=transient, row_ids_always=persistent, row_attempts=1,
                          hold_tuning=True, http=[{"nth": 7, "code": 429}, {"nth": 15, "code": 500},
                                                  {"route": "jobs.get", "nth": 6, "code": 503}])
    args = ["+experiment=mtsamples17_bqml", "backend.project=test-project", "backend.dataset=ftlab_ds",
            f"backend.api_endpoint={fake_bq.url}", "backend.poll_interval_s=0.05",
            "backend.poll_max_interval_s=0.1", "backend.progress=false", "backend.row_retries=2",
            "backend.row_retry_backoff_s=0.01", "data.max_train_rows=120", "data.max_eval_rows=40",
            "eval.bootstrap_samples=50", f"hydra.run.dir={run_dir}"]
    env = dict(os.environ, MLFLOW_TRACKING_URI=db)
    proc = subprocess.Popen(_ftlab() + args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    job_file = run_dir / "train" / "bqml_job.json"
    try:
        deadline = time.monotonic() + 180
        while not job_file.exists():
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the run never submitted its tuning job"
            time.sleep(0.1)
        time.sleep(0.5)  # let it poll the RUNNING job
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    job_id = json.loads(job_file.read_text())["job_id"]
    fake_bq.faults.update(hold_tuning=False)
    again = subprocess.run(_ftlab() + args + [f"resume={run_dir}"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    calls = fake_bq.calls_per_statement()
    assert calls["create_tuned_model"]["jobs.insert"] == 1  # re-attached, never resubmitted
    assert json.loads(job_file.read_text())["job_id"] == job_id
    assert any(e["status"] in (429, 500, 503) for e in fake_bq.log)  # faults really fired
    client = MlflowClient(tracking_uri=db)
    (run,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert run.info.status == "FINISHED" and run.data.tags["bqml.tune_job_id"] == job_id
    m = run.data.metrics
    for key in ("eval/base/eval/macro_f1", "eval/tuned/eval/macro_f1", "native/base/eval/macro_f1",
                "native/tuned/eval/macro_f1", "compare/eval/mcnemar_p"):
        assert key in m, key
    for stage in ("base", "tuned"):
        rows = [json.loads(x) for x in (run_dir / "eval" / stage / "eval" / "predictions.jsonl")
                .read_text().splitlines()]
        assert [r["id"] for r in rows] == [f"eval-{i}" for i in range(40)]  # every row accounted for
        failed = {r["id"] for r in rows if r["status"]}
        assert failed == set(persistent) and all(r["unparseable"] for r in rows if r["status"])
        assert m[f"eval/{stage}/eval/failed_rows"] == 2
