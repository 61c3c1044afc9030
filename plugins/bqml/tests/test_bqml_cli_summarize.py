"""The summarization smoke experiment end to end on bqml: the ftlab CLI against the fake, MLflow holding
ftlab's ROUGE beside ML.EVALUATE's native numbers (which the fake computes with the host's ROUGE)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ftlab_bqml.testing import ftlab_command

ROOT = Path(__file__).resolve().parents[3]


def test_cli_summarize_smoke_on_bqml_logs_host_and_native_metrics(fake_bq, tmp_path):
    from mlflow.tracking import MlflowClient  # a dependency of ftlab: no skip

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    cmd = ftlab_command() + ["+experiment=mtsamples_summarize_smoke", "backend=bqml", "model=gemini_2_0_flash",
                      "backend.project=test-project", "backend.dataset=ftlab_ds", f"backend.api_endpoint={fake_bq.url}",
                      "backend.poll_interval_s=0.05", "backend.poll_max_interval_s=0.1", "backend.progress=false",
                      "backend.row_retry_backoff_s=0.01", "data.max_train_rows=30", "data.max_eval_rows=12",
                      "eval.decoding.stop=[]", "eval.bootstrap_samples=50", f"tracking.uri={db}",
                      f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, MLFLOW_TRACKING_URI=db))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=db)
    (run,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert run.info.status == "FINISHED"
    m, params = run.data.metrics, run.data.params
    assert params["backend.name"] == "bqml" and params["eval.task"] == "summarization"
    assert params["backend.generate_function"] == "ai"
    for stage in ("base", "tuned"):
        for key in (f"eval/{stage}/eval/rougeL_f1", f"native/{stage}/eval/rouge-l_precision",
                    f"native/{stage}/eval/rouge-l_recall", f"native/{stage}/eval/rouge-l_f1_score"):
            assert key in m, (key, sorted(m))
        # the fake's ML.EVALUATE scores the same answers with the host's rouge-score: the same number
        assert m[f"native/{stage}/eval/rouge-l_f1_score"] == pytest.approx(m[f"eval/{stage}/eval/rougeL_f1"],
                                                                         abs=1e-9)
        assert m[f"native/{stage}/eval/num_total_rows"] == m[f"native/{stage}/eval/num_successful_rows"] == 12
        assert not any(k.startswith(f"native/{stage}/eval/per_class/") or k.endswith("macro_f1")
                       for k in m if k.startswith("native/"))
    for key in ("rougeL_f1", "rouge1_f1", "bleu4"):  # the paired comparison of the headline metrics
        d = m[f"compare/eval/{key}_delta"]
        assert d == pytest.approx(m[f"eval/tuned/eval/{key}"] - m[f"eval/base/eval/{key}"])
        assert m[f"compare/eval/{key}_delta_ci_low"] <= d <= m[f"compare/eval/{key}_delta_ci_high"]
        assert sum(m[f"compare/eval/{key}_{x}"] for x in ("wins", "ties", "losses")) == 12
    # every example side by side, logged as an MLflow table (the tag is how the UI finds it)
    assert {"path": "compare/eval/examples.json", "type": "table"} in json.loads(run.data.tags["mlflow.loggedArtifacts"])
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "compare/eval/examples.json",
                                                      str(tmp_path))).read_text())
    assert len(table["data"]) == 12 and all(row[table["columns"].index("tuned_output")] for row in table["data"])
    assert m["bqml/tuning_epochs"] >= 1
    (model,) = [x for x in fake_bq.engine.models.values() if x["kind"] == "tuned"]
    assert model["options"]["evaluation_task"] == "SUMMARIZATION"
    assert fake_bq.calls_per_statement()["create_tuned_model"]["jobs.insert"] == 1
    rows = [json.loads(x) for x in (run_dir / "eval" / "tuned" / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["raw_text"] for r in rows)
    assert (run_dir / "native" / "tuned_eval.json").exists()
