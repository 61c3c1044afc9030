"""tfidf: the same config and seed twice through the ``ftlab`` command gives identical predictions
(label, raw text, scores) and identical MLflow metrics. tfidf decodes by score_labels only
(``generate`` falls back to it), so one mode covers it."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LABELS = ["Cardiology", "Neurology", "Orthopedics"]
WORDS = {"Cardiology": ["chest", "heart", "ecg", "murmur"], "Neurology": ["headache", "seizure", "stroke"],
         "Orthopedics": ["fracture", "knee", "bone", "cast"]}


def _write(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    rows = [{"input_text": " ".join(rng.choice(WORDS[lab] + ["the", "patient", "was", "seen"])
                                    for _ in range(10)), "output_text": lab}
            for lab in (LABELS[i % 3] for i in range(n))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_same_config_and_seed_twice_gives_identical_predictions_and_metrics(tmp_path):
    from mlflow.tracking import MlflowClient

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train, ev = _write(tmp_path / "train.jsonl", 24, 1), _write(tmp_path / "eval.jsonl", 9, 2)
    exe = Path(sys.executable).with_name("ftlab")
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        cmd = [str(exe) if exe.exists() else shutil.which("ftlab") or "ftlab", "+experiment=mtsamples17_tfidf",
               f"data.train_path={train}", f"data.eval_path={ev}", "data.labels=[" + ",".join(LABELS) + "]",
               "data.acceptable.source=none", "eval.bootstrap_samples=20", "backend.min_df=1", "seed=3", f"hydra.run.dir={d}"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, MLFLOW_TRACKING_URI=db, FTLAB_HOME=str(ROOT),
                                       MLFLOW_DISABLE_TELEMETRY="true"))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=db)
    metrics = []
    for d in dirs:
        for stage in ("base", "tuned"):
            rows = [json.loads(x) for x in (dirs[0] / f"eval/{stage}/eval/predictions.jsonl").read_text().splitlines()]
            other = [json.loads(x) for x in (d / f"eval/{stage}/eval/predictions.jsonl").read_text().splitlines()]
            assert len(rows) == 9 and all(r["scores"] for r in rows)
            assert ([(r["id"], r["label"], r["raw_text"], r["scores"]) for r in rows]
                    == [(r["id"], r["label"], r["raw_text"], r["scores"]) for r in other])
        run = client.get_run(json.loads((d / "mlflow_run.json").read_text())["run_id"])
        metrics.append({k: v for k, v in run.data.metrics.items()
                        if not k.startswith(("time/", "cost/")) and not k.endswith("_per_s")})
    assert "eval/tuned/eval/macro_f1" in metrics[0] and metrics[0] == metrics[1]
