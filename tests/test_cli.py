"""The real ``ftlab`` entry point, as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import mlflow_client

ROOT = Path(__file__).resolve().parents[1]
FTLAB = str(Path(sys.executable).parent / "ftlab")


def ftlab(*args, timeout=300):
    return subprocess.run([FTLAB, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=os.environ.copy())


def test_smoke_experiment_through_the_entry_point(tmp_path):
    """The whole workflow on a tiny random model, checked through MlflowClient."""
    res = ftlab("+experiment=smoke", f"hydra.run.dir={tmp_path / 'run'}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "macro-F1" in res.stdout and "paired bootstrap CI" in res.stdout
    client = mlflow_client()
    exp = client.get_experiment_by_name("smoke")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["backend.name"] == "local_peft" and p["model.source"] == "tiny_random"
    assert p["train.max_steps"] == "6" and p["data.max_eval_rows"] == "24"
    assert json.loads(p["train.lora.target_modules"]) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    m = run.data.metrics
    slugs = json.loads((tmp_path / "run" / "labels.json").read_text())
    assert len(slugs) == 17
    for stage in ("base", "tuned"):
        for s in slugs:
            for k in ("precision", "recall", "f1"):
                assert f"eval/{stage}/eval/per_class/{s}/{k}" in m
        assert 0 <= m[f"eval/{stage}/eval/macro_f1"] <= 1
    assert "compare/eval/macro_f1_delta_ci_low" in m
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(losses) >= 3
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "model/adapter")}
    assert "model/adapter/adapter_model.safetensors" in arts
    for f in ("config.yaml", "manifest.json", "eval/tuned/eval/predictions.jsonl",
              "eval/tuned/eval/per_class.csv", "eval/tuned/eval/confusion_matrix.png",
              "compare/eval/per_class_delta.csv", "train/loss.png"):
        assert (tmp_path / "run" / f).is_file(), f


def test_plugins_lists_backends_with_package_and_version():
    res = ftlab("plugins")
    assert res.returncode == 0
    assert "local_peft" in res.stdout and "ftlab-local-peft" in res.stdout and "0.1.0" in res.stdout
    assert "local_peft: eval.decoding.mode: score_labels, generate; train.method: none, lora, lora_cls" \
        in res.stdout  # the declared capabilities


def test_cfg_job_shows_the_composed_config():
    res = ftlab("--cfg", "job", "+experiment=smoke", "train.lora.r=4")
    assert res.returncode == 0, res.stderr
    assert "experiment: smoke" in res.stdout and "r: 4" in res.stdout and "source: tiny_random" in res.stdout


def test_help_lists_groups_without_importing_torch():
    code = ("import sys; from ftlab.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "from ftlab.plugins import get_plugins; get_plugins().backends()\n"
            "bad = [m for m in ('torch', 'transformers', 'peft', 'google.cloud.bigquery') if m in sys.modules]\n"
            "print('HEAVY', bad)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "Config groups" in res.stdout and "backend: " in res.stdout
    assert "HEAVY []" in res.stdout, res.stdout[-500:]


def test_typo_exits_nonzero_before_anything_runs(tmp_path):
    res = ftlab("+experiment=smoke", "train.learnig_rate=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert res.returncode == 2
    assert "did you mean 'train.learning_rate'" in res.stderr
    assert not (tmp_path / "run").exists()


def test_bad_data_row_names_file_and_line_and_leaves_no_run(tmp_path):
    bad = tmp_path / "eval.jsonl"
    bad.write_text(json.dumps({"input_text": "ok", "output_text": "Autopsy"}) + "\n"
                   + json.dumps({"input_text": "", "output_text": "Autopsy"}) + "\n")
    res = ftlab("+experiment=smoke", f"data.eval_path={bad}", f"hydra.run.dir={tmp_path / 'run'}")
    assert res.returncode == 2
    assert f"{bad}:2: empty 'input_text'" in res.stderr
    client = mlflow_client()
    exp = client.get_experiment_by_name("smoke")
    assert exp is None or not client.search_runs([exp.experiment_id])


def test_dead_tracking_server_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    res = ftlab("+experiment=smoke", f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    assert res.returncode == 2
    assert "MLflow tracking server at http://127.0.0.1:9 is not usable" in res.stderr


def test_multirun_sweep_gives_one_run_per_job(tmp_path):
    res = ftlab("-m", "+experiment=smoke", "train.lora.r=4,8", "stages=[evaluate_base]",
                f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert res.returncode == 0, res.stderr[-3000:]
    client = mlflow_client()
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("ftlab.sweep") == "parent"]  # docs/sweeps.md
    jobs = [r for r in runs if r.info.run_id != parent.info.run_id]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in jobs)
    assert sorted(r.data.params["train.lora.r"] for r in jobs) == ["4", "8"]
    assert all((tmp_path / "sweep" / str(i) / "eval/base/eval/predictions.jsonl").is_file() for i in (0, 1))
