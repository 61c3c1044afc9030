"""``ftlab predict``: a recorded run's model, prompt and decoding applied to new rows."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import ROOT, mlflow_client


def _run_id():
    client = mlflow_client()
    exp = client.get_experiment_by_name("smoke")
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0].info.run_id


def _eval_rows(n: int) -> list[dict]:
    lines = (ROOT / "data/mtsamples17/eval.jsonl").read_text().splitlines()[:n]
    return [json.loads(x) for x in lines]


def _write(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def _read(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.parametrize("which", [None, "base"])
def test_predict_reproduces_the_runs_own_answers(run_experiment, tmp_path, which, capsys):
    from ftlab.cli import main

    _, run_dir = run_experiment()
    rows = _eval_rows(24)
    rows[3] = {"id": "custom-3", **rows[3]}
    src, out = tmp_path / "in.jsonl", tmp_path / "sub" / "out.jsonl"
    _write(src, rows[:3] + [""] + rows[3:])  # a blank line is skipped, line numbers stay true
    args = ["predict", _run_id(), "--input", str(src), "--output", str(out)]
    assert main(args + (["--model", which] if which else [])) == 0
    assert "24 predictions written" in capsys.readouterr().out
    got = _read(out)
    stage = which or "tuned"  # the run trained, so the default is the tuned model
    recorded = _read(run_dir / f"eval/{stage}/eval/predictions.jsonl")
    assert [g["raw_text"] for g in got] == [r["raw_text"] for r in recorded]
    assert [g["label"] for g in got] == [r["label"] for r in recorded]
    assert [g["unparseable"] for g in got] == [r["unparseable"] for r in recorded]
    assert [g["truth"] for g in got] == [r["output_text"] for r in rows]
    assert [g["id"] for g in got[:5]] == [1, 2, 3, "custom-3", 6]
    assert [g["line"] for g in got[:5]] == [1, 2, 3, 5, 6]
    if which == "base":
        assert any(g["unparseable"] and g["raw_text"] == "I am not sure." for g in got)
    else:
        assert all(g["raw_text"].startswith("Answer: ") and not g["unparseable"] for g in got)


def test_bad_rows_are_reported_by_line_and_nothing_is_written(run_experiment, tmp_path, capsys):
    from ftlab.cli import main

    run_experiment()
    rows = _eval_rows(5)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(src, [rows[0], {"text": "no input_text here"}, rows[2], "{not json", rows[4], "[1, 2]"])
    assert main(["predict", _run_id(), "--input", str(src), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{src}:2: missing key 'input_text'" in err
    assert f"{src}:4: not valid JSON" in err
    assert f"{src}:6: expected a JSON object" in err
    assert "3 invalid input row(s); nothing was written" in err
    assert f"{src}:1" not in err and f"{src}:3" not in err
    assert not out.exists()


def test_without_the_run_folder_base_works_from_artifacts_and_tuned_is_explained(
        run_experiment, tmp_path, capsys):
    from ftlab.cli import main

    _, run_dir = run_experiment()
    shutil.rmtree(run_dir)
    src = tmp_path / "in.jsonl"
    _write(src, [{"input_text": r["input_text"]} for r in _eval_rows(3)])
    base_args = ["predict", _run_id(), "--input", str(src), "--output", str(tmp_path / "b.jsonl")]
    assert main(base_args + ["--model", "base"]) == 0
    got = _read(tmp_path / "b.jsonl")
    assert len(got) == 3 and "truth" not in got[0] and got[0]["id"] == 1
    assert main(["predict", _run_id(), "--input", str(src), "--output", str(tmp_path / "t.jsonl")]) == 2
    assert "state.json" in capsys.readouterr().err
    assert not (tmp_path / "t.jsonl").exists()


def test_base_only_run_defaults_to_base_and_refuses_tuned(run_experiment, tmp_path, capsys):
    from ftlab.cli import main

    run_experiment("stages=[evaluate_base]")
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(src, _eval_rows(2))
    assert main(["predict", _run_id(), "--input", str(src), "--output", str(out)]) == 0
    assert _read(out)[0]["raw_text"] == "I am not sure."  # the base model's junk on row 0
    assert main(["predict", _run_id(), "--input", str(src), "--output", str(out),
                 "--model", "tuned"]) == 2
    assert "did not train: use --model base" in capsys.readouterr().err


def test_recorded_config_is_validated_against_the_backend_schema(fake_backend):
    from ftlab.cli.predict_cmd import load_config
    from ftlab.config.compose import ConfigError

    yaml_text = (ROOT / "conf/tracking/mlflow.yaml").read_text()  # any YAML without a backend
    with pytest.raises(ConfigError, match="no backend.name"):
        load_config(yaml_text, fake_backend)
    with pytest.raises(ConfigError, match="backend.junk_evry"):
        load_config("backend:\n  name: fake\n  junk_evry: 3\n", fake_backend)


def test_predict_from_a_run_folder_without_mlflow(run_experiment, tmp_path):
    from ftlab.cli.predict_cmd import predict

    _, run_dir = run_experiment("tracking.enabled=false")
    src = tmp_path / "in.jsonl"
    _write(src, _eval_rows(4))
    got = predict(str(run_dir), src, tmp_path / "out.jsonl", show_progress=False)
    recorded = _read(run_dir / "eval/tuned/eval/predictions.jsonl")[:4]
    assert [g["label"] for g in got] == [r["label"] for r in recorded]
