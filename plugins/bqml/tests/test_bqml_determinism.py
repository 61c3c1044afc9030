"""bqml: the same config and seed twice through the ``ftlab`` command, each against its own fresh fake
BigQuery server, gives identical predictions (label, raw text, scores) and identical MLflow metrics.

bqml decodes by ``generate`` only (score_labels falls back to it) and greedy: BigQuery's
ML.GENERATE_TEXT takes no sampling seed, so a sampled run (temperature > 0) cannot be reproduced
remotely and is not claimed to be (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_same_config_and_seed_twice_gives_identical_predictions_and_metrics(tmp_path):
    from mlflow.tracking import MlflowClient

    from ftlab_bqml.fake import FakeBigQuery

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exe = Path(sys.executable).with_name("ftlab")
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        with FakeBigQuery(tune_polls=3) as fake:  # a fresh server: the second run re-attaches to nothing
            cmd = [str(exe) if exe.exists() else shutil.which("ftlab") or "ftlab", "+experiment=mtsamples17_bqml",
                   "backend.project=test-project", "backend.dataset=ftlab_ds", f"backend.api_endpoint={fake.url}",
                   "backend.poll_interval_s=0.05", "backend.poll_max_interval_s=0.1", "backend.progress=false",
                   "backend.row_retry_backoff_s=0.01", "eval.decoding.temperature=0", "data.max_train_rows=40",
                   "data.max_eval_rows=10", "eval.bootstrap_samples=20", f"tracking.uri={db}",
                   f"hydra.run.dir={d}"]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                                  env=dict(os.environ, MLFLOW_TRACKING_URI=db, MLFLOW_DISABLE_TELEMETRY="true"))
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a, b = dirs
    for stage in ("base", "tuned"):
        pa, pb = ([json.loads(x) for x in (d / f"eval/{stage}/eval/predictions.jsonl").read_text().splitlines()]
                  for d in dirs)
        assert len(pa) == 10
        assert ([(r["id"], r["label"], r["raw_text"], r["scores"]) for r in pa]
                == [(r["id"], r["label"], r["raw_text"], r["scores"]) for r in pb]), stage
    client = MlflowClient(tracking_uri=db)
    metrics = []
    for d in dirs:
        run = client.get_run(json.loads((d / "mlflow_run.json").read_text())["run_id"])
        metrics.append({k: v for k, v in run.data.metrics.items()
                        if not k.startswith(("time/", "cost/")) and not k.endswith("_per_s")})
    assert "eval/tuned/eval/macro_f1" in metrics[0] and "native/tuned/eval/macro_f1" in metrics[0]
    assert metrics[0] == metrics[1]
