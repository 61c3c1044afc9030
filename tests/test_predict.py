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


def test_without_the_run_folder_both_models_come_from_mlflow(run_experiment, tmp_path, capsys):
    """The run folder is deleted: config from the artifacts, the tuned model from its tag and its
    ``model/`` artifact (downloaded), the same answers as the run gave."""
    from ftlab.cli import main

    _, run_dir = run_experiment()
    recorded = _read(run_dir / "eval/tuned/eval/predictions.jsonl")[:5]
    shutil.rmtree(run_dir)
    src = tmp_path / "in.jsonl"
    _write(src, [{"input_text": r["input_text"]} for r in _eval_rows(5)])
    base_args = ["predict", _run_id(), "--input", str(src), "--output", str(tmp_path / "b.jsonl")]
    assert main(base_args + ["--model", "base"]) == 0
    got = _read(tmp_path / "b.jsonl")
    assert len(got) == 5 and "truth" not in got[0] and got[0]["id"] == 1
    assert main(["predict", _run_id(), "--input", str(src), "--output", str(tmp_path / "t.jsonl")]) == 0
    tuned = _read(tmp_path / "t.jsonl")
    assert [t["raw_text"] for t in tuned] == [r["raw_text"] for r in recorded]
    assert all(t["raw_text"].startswith("Answer: ") for t in tuned)  # the tuned model, not the base


def test_without_the_run_folder_or_an_uploaded_model_tuned_is_explained(run_experiment, tmp_path, capsys):
    from ftlab.cli import main

    _, run_dir = run_experiment("tracking.log_adapter=false")
    shutil.rmtree(run_dir)
    src = tmp_path / "in.jsonl"
    _write(src, [{"input_text": r["input_text"]} for r in _eval_rows(2)])
    assert main(["predict", _run_id(), "--input", str(src), "--output", str(tmp_path / "t.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "is not on this machine" in err and "no 'model/fake_model.json' artifact" in err
    assert "tracking.log_adapter=false" in err
    assert not (tmp_path / "t.jsonl").exists()


KILLED_PREDICT = """
import sys
sys.path.insert(0, {tests!r})
from fake_backend import FakePlugin
from ftlab.plugins import Plugins, set_plugins

pm = Plugins(load_entry_points=True)
set_plugins(pm)
pm.register(FakePlugin(), name="fake_backend_plugin")
from ftlab.cli import main
sys.exit(main({args!r}))
"""


def test_a_killed_predict_keeps_its_chunks_and_continues_without_redoing_them(
        run_experiment, tmp_path, monkeypatch, capsys):
    """SIGKILL after 2 of 5 chunks: those 16 rows are kept; the rerun predicts only the other 24
    and writes what an uninterrupted predict writes."""
    import os
    import subprocess
    import sys

    from fake_backend import FakeBackend

    from ftlab.cli import main

    run_experiment("eval.decoding.batch_size=2")  # chunks of 8 rows
    src, whole, out = tmp_path / "in.jsonl", tmp_path / "whole.jsonl", tmp_path / "out.jsonl"
    _write(src, _eval_rows(40))
    args = ["predict", _run_id(), "--input", str(src), "--output", str(out)]
    code = KILLED_PREDICT.format(tests=str(ROOT / "tests"), args=args)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, FTLAB_TEST_KILL_AT="predict.chunk@2"))
    assert proc.returncode == -9, proc.stderr[-2000:]
    partial = tmp_path / "out.jsonl.partial"
    assert not out.exists()
    assert sorted(p.name for p in partial.iterdir()) == ["chunk-000000.jsonl", "chunk-000001.jsonl",
                                                         "meta.json"]
    assert sum(len(_read(p)) for p in partial.glob("chunk-*")) == 16

    predicted: list[int] = []
    real_predict = FakeBackend.predict

    def counting(self, model, examples, prompt, decoding):
        predicted.append(len(examples))
        return real_predict(self, model, examples, prompt, decoding)

    monkeypatch.setattr(FakeBackend, "predict", counting)
    capsys.readouterr()
    assert main(args) == 0
    assert predicted == [8, 8, 8]  # chunks 3..5 only: the kept 16 rows are not predicted again
    assert "continuing: 16 of 40 rows were kept" in capsys.readouterr().err
    assert not partial.exists()
    predicted.clear()
    assert main(["predict", _run_id(), "--input", str(src), "--output", str(whole)]) == 0
    assert sum(predicted) == 40
    assert out.read_text() == whole.read_text()


def test_chunks_kept_for_another_input_are_not_reused(run_experiment, tmp_path, capsys):
    from ftlab.cli import main

    run_experiment("eval.decoding.batch_size=2")
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(src, _eval_rows(12))
    stale = tmp_path / "out.jsonl.partial"
    stale.mkdir()
    (stale / "meta.json").write_text(json.dumps({"key": {"input": "other"}, "total_rows": 12,
                                                 "chunk_rows": 8}))
    (stale / "chunk-000000.jsonl").write_text('{"label": "stale"}\n' * 8)
    assert main(["predict", _run_id(), "--input", str(src), "--output", str(out)]) == 0
    assert "kept for another run, model or input: starting over" in capsys.readouterr().err
    assert all(r["label"] != "stale" for r in _read(out)) and len(_read(out)) == 12


def test_one_progress_bar_for_all_rows_with_an_eta(run_experiment, fake_backend, tmp_path):
    import io
    import re

    from rich.console import Console

    from ftlab.cli.predict_cmd import load_config, predict_rows
    from ftlab.contract import RunContext
    from ftlab.prompt import make_prompt

    _, run_dir = run_experiment("eval.decoding.batch_size=2")
    cfg = load_config((run_dir / "config.yaml").read_text(), fake_backend)
    backend = fake_backend.backend("fake").factory(cfg, RunContext(tmp_path))
    rows = [(n, r) for n, r in enumerate(_eval_rows(24), 1)]
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    predict_rows(cfg, backend, backend.base_model(), make_prompt(cfg.prompt, cfg.data.labels), rows,
                 console=console)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())  # colours and cursor moves off
    assert "24/24 rows" in text and "ETA" in text
    assert "/8 rows" not in text  # never a bar per 8-row chunk


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
