"""The runner end to end on the fake backend: stages, files, MLflow records, failures."""

from __future__ import annotations

import json

import pytest

from conftest import mlflow_client


def _only_run(experiment="smoke"):
    client = mlflow_client()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_all_stages_recorded_in_mlflow_and_run_folder(run_experiment):
    objective, run_dir = run_experiment()
    client, run = _only_run()
    assert run.info.status == "FINISHED"
    m = run.data.metrics
    assert objective == pytest.approx(m["eval/tuned/eval/macro_f1"])
    for stage in ("base", "tuned"):
        p = f"eval/{stage}/eval"
        for key in ("macro_f1", "micro_f1", "weighted_f1", "accuracy", "unparseable_rate"):
            assert f"{p}/{key}" in m and f"{p}/strict/{key}" in m and f"{p}/lenient/{key}" in m
        assert f"{p}/per_class/cardiovascular_pulmonary/f1" in m
        assert f"{p}/per_class/consult_history_and_phy/precision" in m
        assert f"{p}/lenient/per_class/general_medicine/recall" in m
    assert m["eval/base/eval/unparseable_rate"] > 0  # the fake answers junk on every 7th row
    for key in ("macro_f1_delta", "macro_f1_delta_ci_low", "macro_f1_delta_ci_high", "mcnemar_p"):
        assert f"compare/eval/{key}" in m
    assert m["compare/eval/macro_f1_delta_ci_low"] <= m["compare/eval/macro_f1_delta"] \
        <= m["compare/eval/macro_f1_delta_ci_high"]
    assert [x.step for x in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2, 3]
    assert run.data.params["train.lora.r"] == "16"
    assert run.data.params["backend.name"] == "fake"
    assert run.data.tags["mlflow.source.git.commit"]
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "eval/base/eval")}
    assert {f"eval/base/eval/{f}" for f in ("predictions.jsonl", "per_class.csv",
            "confusion_matrix.png", "confusion_matrix.csv")} <= arts
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "manifest.json", "labels.json", "model", "compare", "train"} <= top
    # the same files are in the run folder
    rows = [json.loads(x) for x in (run_dir / "eval/base/eval/predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 24
    junk = [r for r in rows if r["unparseable"]]
    assert junk and all(r["raw_text"] == "I am not sure." for r in junk)
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["data"]["eval"]["rows"] == 24 and len(man["prompt_sha256"]) == 64
    # the overhead of tracking is measured: part of the run, not all of it, and its share adds up
    assert 0 < m["time/tracking_s"] < m["time/run_wall_s"]
    assert m["time/tracking_share"] == pytest.approx(m["time/tracking_s"] / m["time/run_wall_s"])


def test_tracking_time_counts_every_logging_call(tmp_path):
    from ftlab.tracking.mlflow_tracker import Tracker

    tr = Tracker(tmp_path / "run", enabled=False, uri=None, experiment="x", run_name=None)
    tr.start({})
    after_start = tr.seconds
    for i in range(200):
        tr.log_metrics({"m": float(i)}, step=i)
    assert tr.seconds > after_start  # the run folder's mirror (journal, metrics file) is counted
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 200


def test_stage_selection_base_only(run_experiment):
    run_experiment("stages=[evaluate_base]")
    _, run = _only_run()
    assert "eval/base/eval/macro_f1" in run.data.metrics
    assert not any(k.startswith(("eval/tuned", "compare")) for k in run.data.metrics)


def test_failed_run_is_marked_failed_with_error_tag(run_experiment):
    with pytest.raises(RuntimeError, match="asked to fail"):
        run_experiment("backend.fail_predict=true")
    _, run = _only_run()
    assert run.info.status == "FAILED"
    assert "asked to fail" in run.data.tags["error"]


def test_evaluate_tuned_without_training_is_a_clear_error(run_experiment):
    from ftlab.runner import StageError

    with pytest.raises(StageError, match="needs a tuned model"):
        run_experiment("stages=[evaluate_tuned]")


def test_resume_skips_finished_stages(run_experiment, fake_backend):
    from ftlab.config.compose import compose
    from ftlab.runner import run

    _, run_dir = run_experiment()
    before = (run_dir / "eval/tuned/eval/predictions.jsonl").read_text()
    state = json.loads((run_dir / "state.json").read_text())
    assert state["evaluated"] == ["base/eval", "tuned/eval"]
    cfg = compose(["+experiment=smoke", "backend=fake", f"resume={run_dir}"], fake_backend)
    run(cfg, plugins=fake_backend)
    assert (run_dir / "eval/tuned/eval/predictions.jsonl").read_text() == before
    _, again = _only_run()  # the same MLflow run was continued, not a new one
    assert again.info.status == "FINISHED"
