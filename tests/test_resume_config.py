"""``resume=<run folder>`` continues only the run the folder records: a changed config or input is refused."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, mlflow_client


def _resume(fake_backend, run_dir, *overrides):
    from ftlab.config.compose import compose
    from ftlab.runner import run

    return run(compose(["+experiment=smoke", "backend=fake", f"resume={run_dir}", *overrides],
                       fake_backend), plugins=fake_backend)


def test_resume_with_a_changed_config_is_refused_naming_every_key(run_experiment, fake_backend):
    from ftlab.runner import StageError

    _, run_dir = run_experiment("stages=[evaluate_base]")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(StageError) as err:
        _resume(fake_backend, run_dir, "stages=[evaluate_base]", "train.lora.r=8", "backend.junk_every=3")
    msg = str(err.value)
    assert "refusing to continue a run whose config or inputs changed" in msg
    assert "train.lora.r: 16 -> 8" in msg and "backend.junk_every: 7 -> 3" in msg
    assert "stages" not in msg  # the same stages: not a difference
    assert "it began as:" in msg
    # nothing in the folder moved: not the config, not the state, not the MLflow run
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_resume_may_change_only_what_cannot_change_a_result(run_experiment, fake_backend):
    _, run_dir = run_experiment("stages=[evaluate_base]")
    recorded = (run_dir / "config.yaml").read_text()
    _resume(fake_backend, run_dir, "stages=[evaluate_base]", "tracking.strict=true")
    assert (run_dir / "config.yaml").read_text() == recorded  # the record the run began with
    client = mlflow_client()
    (run,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["train.lora.r"] == "16"


def test_resume_with_changed_data_is_refused(run_experiment, fake_backend, tmp_path):
    from ftlab.runner import StageError

    data = tmp_path / "eval.jsonl"
    data.write_text("\n".join((ROOT / "data/mtsamples17/eval.jsonl").read_text().splitlines()[:24]) + "\n")
    _, run_dir = run_experiment(f"data.eval_path={data}", "stages=[evaluate_base]")
    rows = data.read_text().splitlines()
    row = json.loads(rows[3])
    row["input_text"] += " edited"
    data.write_text("\n".join(rows[:3] + [json.dumps(row)] + rows[4:]) + "\n")
    with pytest.raises(StageError, match=rf"data file of split 'eval' {data} changed"):
        _resume(fake_backend, run_dir, f"data.eval_path={data}", "stages=[evaluate_base]")
