"""What a run records about itself and what it survives: skipped data, secrets, crash-safe files."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, mlflow_client


def _only_run(experiment="smoke"):
    client = mlflow_client()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_skipped_rows_are_counted_logged_and_kept_as_an_artifact(run_experiment, tmp_path, caplog):
    lines = (ROOT / "data/mtsamples17/eval.jsonl").read_text().splitlines()[:24]
    bad = lines[:3] + ['{"input_text": 12, "output_text": "Surgery"}', "{oops"] + lines[3:]
    path = tmp_path / "eval_bad.jsonl"
    path.write_text("\n".join(bad) + "\n")
    with caplog.at_level("WARNING", logger="ftlab"):
        _, run_dir = run_experiment(f"data.eval_path={path}", "data.on_error=skip")
    client, run = _only_run()
    m = run.data.metrics
    assert m["data/eval/skipped_rows"] == 2
    assert m["data/eval/skipped/wrong_type"] == 1 and m["data/eval/skipped/invalid_json"] == 1
    assert run.data.params["data.on_error"] == "skip"
    rows = [json.loads(x) for x in (run_dir / "data/skipped_rows.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rows] == [(4, "wrong_type"), (5, "invalid_json")]
    assert rows[0]["message"] == "'input_text' must be a string, got int"
    assert "data/skipped_rows.jsonl" in {a.path for a in client.list_artifacts(run.info.run_id, "data")}
    assert any("left out 2 bad rows" in r.getMessage() for r in caplog.records)
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["data"]["eval"]["rows"] == 24  # the 24 good rows; limits count kept rows


def test_bad_rows_fail_the_run_by_default(run_experiment, tmp_path):
    from ftlab.data import DataError

    path = tmp_path / "eval_bad.jsonl"
    path.write_text("{oops\n")
    with pytest.raises(DataError, match=r"eval_bad.jsonl:1: not valid JSON"):
        run_experiment(f"data.eval_path={path}")
