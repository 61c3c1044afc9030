"""lora_cls end to end through the ``ftlab`` command (tiny model): MLflow records, ftlab predict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CLS = ["+experiment=smoke", "train.method=lora_cls", "backend.adapted_tokens=8", "backend.pooling=last_context",
       "train.class_weighting=sqrt", "train.multi_label=soft", "train.max_steps=12", "train.learning_rate=5e-3",
       "data.max_train_rows=24", "data.max_eval_rows=12", "eval.bootstrap_samples=50"]


def _ftlab(*args: str, db: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("ftlab")
    cmd = [str(exe) if exe.exists() else shutil.which("ftlab") or "ftlab", *args]
    env = dict(os.environ, MLFLOW_TRACKING_URI=db, MLFLOW_DISABLE_TELEMETRY="true", FTLAB_HOME=str(ROOT),
               HF_HUB_OFFLINE="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    tmp = tmp_path_factory.mktemp("cls_run")
    db = f"sqlite:///{tmp / 'mlflow.db'}"
    proc = _ftlab(*CLS, f"hydra.run.dir={tmp / 'run'}", db=db)
    client = MlflowClient(tracking_uri=db)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    return db, tmp / "run", runs[0], proc.stdout


def test_run_records_the_method_its_metrics_and_the_adapter(recorded):
    db, run_dir, run, out = recorded
    p, m, tags = run.data.params, run.data.metrics, run.data.tags
    assert p["train.method"] == "lora_cls" and p["backend.pooling"] == "last_context"
    assert p["backend.score_end_token"] == "True"  # a vocabulary token option, not a secret: kept
    assert run.info.status == "FINISHED"
    for stage in ("base", "tuned"):
        for key in ("macro_f1", "accuracy", "lenient/macro_f1"):
            assert 0.0 <= m[f"eval/{stage}/eval/{key}"] <= 1.0
    assert m["train/items"] <= 24 and m["train/split_layer"] == 0.0
    assert "compare/eval/macro_f1_delta" in m
    assert tags["local_peft.dtype"] in ("float32", "bfloat16") and tags["local_peft.dtype_reason"]
    meta = json.loads((run_dir / "train/adapter/ftlab_cls.json").read_text())
    assert meta["method"] == "lora_cls" and meta["adapted_tokens"] == 8
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["backend_runtime"]["local_peft.dtype"] == tags["local_peft.dtype"]
    # the tokenizer's identity is recorded (a file-based model adds its path and sha256)
    assert man["model"]["tokenizer_sha256"] == tags["model.tokenizer_sha256"] and len(tags["model.tokenizer_sha256"]) == 64
    assert "model.tokenizer_sha256" not in man["backend_runtime"]
    assert "backend: " in out and "local_peft.dtype=" in out  # the closing summary says how it ran
    # every tuned answer is a label, with its head's log-probabilities
    rows = [json.loads(x) for x in (run_dir / "eval/tuned/eval/predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["label"] == max(r["scores"], key=r["scores"].get) for r in rows)


def test_predict_in_a_new_process_reproduces_the_tuned_answers(recorded, tmp_path):
    db, run_dir, run, _ = recorded
    rows = [json.loads(x) for x in (ROOT / "data/mtsamples17/eval.jsonl").read_text().splitlines()[:12]]
    src = tmp_path / "new.jsonl"
    src.write_text("".join(json.dumps({"id": f"n{i}", "input_text": r["input_text"]}) + "\n"
                           for i, r in enumerate(rows)))
    out = tmp_path / "out.jsonl"
    _ftlab("predict", run.info.run_id, "--input", str(src), "--output", str(out), "--model", "tuned", db=db)
    got = [json.loads(x) for x in out.read_text().splitlines()]
    want = [json.loads(x) for x in (run_dir / "eval/tuned/eval/predictions.jsonl").read_text().splitlines()]
    assert [g["label"] for g in got] == [w["label"] for w in want]
    for g, w in zip(got, want):
        # the run reused the frozen states of its base pass; predict recomputes them (bf16 may differ in
        # the last bits), so the labels are equal and the log-probabilities close
        assert g["scores"] == pytest.approx(w["scores"], abs=2e-2)
