"""Runs you can reproduce, through the real ``ftlab`` command on the tiny model (CPU):

* the same config and seed twice gives identical predictions (label, raw text, scores) and
  identical MLflow metrics, for each training method and decoding mode;
* a training process SIGKILLed inside a checkpoint write resumes (``resume=<run folder>``) to the
  numbers of an uninterrupted run;
* ``ftlab predict`` works from the MLflow run alone once the run folder is gone, tuned adapter
  included (downloaded from the run's artifacts), with no per-chunk progress bars.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SMALL = ["+experiment=smoke", "data.max_train_rows=8", "data.max_eval_rows=6", "train.max_steps=4",
         "eval.bootstrap_samples=20", "backend.progress=false", "backend.dtype=float32"]
"""float32: the dtype=auto probe picks by timing, which is exactly what a determinism test must not
depend on (once cached, auto is as reproducible as the dtype it cached)."""
GENERATE = ["eval.decoding.mode=generate", "eval.decoding.max_new_tokens=6"]
MODES = {
    "lora-score_labels": ["train.method=lora"],
    "lora-generate_greedy": ["train.method=lora", *GENERATE],
    "lora-generate_sampled": ["train.method=lora", *GENERATE, "eval.decoding.temperature=0.9",
                              "eval.decoding.top_p=0.95", "seed=7"],
    # a lora_cls adapter answers with its head whatever the mode; its base evaluation decodes as
    # lora's does, so one mode covers what lora_cls adds (the head, the reused frozen states)
    "lora_cls-score_labels": ["train.method=lora_cls", "backend.adapted_tokens=8"],
}
VARYING = ("time/", "cost/")
"""Wall-clock metrics; everything else must be identical."""


def _ftlab(*args: str, db: str, env: dict | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("ftlab")
    cmd = [str(exe) if exe.exists() else shutil.which("ftlab") or "ftlab", *args]
    full = dict(os.environ, MLFLOW_TRACKING_URI=db, MLFLOW_DISABLE_TELEMETRY="true",
                FTLAB_HOME=str(ROOT), HF_HUB_OFFLINE="1", **(env or {}))
    proc = subprocess.run(cmd, cwd=ROOT, env=full, capture_output=True, text=True, timeout=900)
    if ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _run(run_dir: Path, db: str) -> dict:
    """The MLflow run recorded for ``run_dir``: its metrics, all but the wall-clock ones."""
    from mlflow.tracking import MlflowClient

    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    run = MlflowClient(tracking_uri=db).get_run(run_id)
    assert run.info.status == "FINISHED"
    return {k: v for k, v in run.data.metrics.items()
            if not k.startswith(VARYING) and not k.endswith("_per_s")}


def _preds(run_dir: Path, stage: str) -> list[tuple]:
    rows = [json.loads(x) for x in (run_dir / f"eval/{stage}/eval/predictions.jsonl").read_text().splitlines()]
    return [(r["id"], r["label"], r["raw_text"], r["scores"]) for r in rows]


@pytest.mark.parametrize("case", list(MODES))
def test_same_config_and_seed_twice_gives_identical_predictions_and_metrics(case, tmp_path):
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        _ftlab(*SMALL, *MODES[case], f"hydra.run.dir={d}", db=db)
    a, b = dirs
    for stage in ("base", "tuned"):
        pa, pb = _preds(a, stage), _preds(b, stage)
        assert len(pa) == 6 and pa == pb, stage
    ma, mb = _run(a, db), _run(b, db)
    assert "eval/tuned/eval/macro_f1" in ma and "train/loss" in ma
    assert ma == mb
    assert (a / "train/history.json").read_text() == (b / "train/history.json").read_text()
    if case == "lora-generate_sampled":  # sampling really samples: greedy gives other answers
        greedy = tmp_path / "greedy"
        _ftlab(*SMALL, *MODES["lora-generate_greedy"], "seed=7", "stages=[evaluate_base]",
               f"hydra.run.dir={greedy}", db=db)
        assert [p[2] for p in _preds(greedy, "base")] != [p[2] for p in _preds(a, "base")]
    if case.startswith("lora-score"):
        assert all(p[3] for p in _preds(a, "tuned"))  # scores are there, and compared


CKPT = [*SMALL, "train.max_steps=8", "backend.checkpoint_steps=2"]
"""Checkpoints at steps 2, 4 and 6 (LoRA dropout 0.05: the restored RNG state matters)."""


def test_sigkill_inside_checkpoint_writes_then_resume_gives_the_uninterrupted_numbers(tmp_path):
    """Killed twice: half-way through writing step 4's checkpoint (the new one incomplete in
    ``checkpoint.tmp``), then between step 6's renames (the previous one only as ``checkpoint.old``).
    Each resume continues from the last complete checkpoint; the end equals an unbroken run."""
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir, whole = tmp_path / "killed", tmp_path / "whole"
    ckpt = run_dir / "train" / "checkpoint"

    proc = _ftlab(*CKPT, f"hydra.run.dir={run_dir}", db=db, ok=False,
                  env={"FTLAB_TEST_KILL_AT": "checkpoint.partial@4"})
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert json.loads((ckpt / "trainer_state.json").read_text())["step"] == 2
    tmp = ckpt.with_name("checkpoint.tmp")
    assert (tmp / "adapter").is_dir() and not (tmp / "state.pt").exists()  # killed mid-write
    assert "trained" not in json.loads((run_dir / "state.json").read_text())

    hydra_dir = f"hydra.run.dir={tmp_path / 'hydra'}"  # Hydra's own folder for a resumed run
    proc = _ftlab(*CKPT, f"resume={run_dir}", hydra_dir, db=db, ok=False,
                  env={"FTLAB_TEST_KILL_AT": "checkpoint.swap@6"})
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert not ckpt.exists()  # the crash window: only .old (step 4) and the new .tmp (step 6)
    assert json.loads((ckpt.with_name("checkpoint.old") / "trainer_state.json").read_text())["step"] == 4
    assert json.loads((tmp / "trainer_state.json").read_text())["step"] == 6

    _ftlab(*CKPT, f"resume={run_dir}", hydra_dir, db=db)
    _ftlab(*CKPT, f"hydra.run.dir={whole}", db=db)
    resumed, unbroken = _run(run_dir, db), _run(whole, db)
    assert resumed.pop("train/resumed_from_step") == 4.0  # from .old: the .tmp was never trusted
    assert unbroken.pop("train/resumed_from_step") == 0.0
    # which process first loaded the model (and so logged its dtype under which name) differs
    for m in (resumed, unbroken):
        loaded = {k: m.pop(k) for k in [k for k in m if k.startswith("local_peft/")]}
        assert loaded and set(loaded.values()) == {0.0}  # float32 everywhere
    assert resumed == unbroken
    for stage in ("base", "tuned"):
        assert _preds(run_dir, stage) == _preds(whole, stage)
    assert (run_dir / "train/history.json").read_text() == (whole / "train/history.json").read_text()
    assert not any(p.name.startswith("checkpoint") for p in (run_dir / "train").iterdir())


def test_predict_from_mlflow_alone_downloads_the_tuned_adapter(tmp_path):
    """The run folder is deleted: ``ftlab predict RUN_ID`` takes the config from the artifacts and the
    tuned adapter from ``model/adapter``, and answers as the run did, with no per-chunk bars."""
    from mlflow.tracking import MlflowClient

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    _ftlab(*SMALL, "eval.decoding.batch_size=2", f"hydra.run.dir={run_dir}", db=db)  # 8-row chunks
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    want = _preds(run_dir, "tuned")
    assert "model/adapter" in [a.path for a in MlflowClient(tracking_uri=db).list_artifacts(run_id, "model")]
    src = tmp_path / "in.jsonl"
    rows = [json.loads(x) for x in (ROOT / "data/mtsamples17/eval.jsonl").read_text().splitlines()[:6]]
    src.write_text("".join(json.dumps({"input_text": r["input_text"]}) + "\n" for r in rows))
    shutil.rmtree(run_dir)
    out = tmp_path / "out.jsonl"
    proc = _ftlab("predict", run_id, "--input", str(src), "--output", str(out), db=db)
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(g["label"], g["raw_text"]) for g in got] == [(w[1], w[2]) for w in want]
    for g, w in zip(got, want):
        assert g["scores"] == pytest.approx(w[3], abs=1e-4)
    assert "score_labels:" not in proc.stderr  # the backend's own bar is off: one bar, ftlab's
    assert not out.with_name("out.jsonl.partial").exists()
