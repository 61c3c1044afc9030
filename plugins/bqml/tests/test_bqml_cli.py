"""The whole experiment through the ftlab CLI against the fake; MLflow holds ftlab's and native metrics."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _ftlab() -> list[str]:
    exe = Path(sys.executable).with_name("ftlab")
    return [str(exe)] if exe.exists() else [shutil.which("ftlab") or "ftlab"]


def test_cli_full_run_against_fake_logs_to_mlflow(fake_bq, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = (["+experiment=mtsamples17_bqml"] if (ROOT / "experiments" / "mtsamples17_bqml.yaml").exists()
                  else ["backend=bqml", "eval.decoding.mode=generate"])
    cmd = _ftlab() + experiment + [
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
    assert mlflow is not None
