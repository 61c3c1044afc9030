"""Bad input for a generation task fails before any model loads, naming the key, the file and the line:
an empty reference, a question without answers, a metric that does not exist, a task the backend does not
support (refused at composition, naming both and where each was set)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from ftlab.config import DataConfig
from ftlab.data import DataError, load_data


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def _cfg(tmp_path, rows, target="description"):
    ok = rows[0]
    return DataConfig(train_path=_write(tmp_path / "train.jsonl", [ok]), eval_path=_write(tmp_path / "eval.jsonl", rows),
                      text_column="text", label_column=target, target_column=target, labels=[])


@pytest.mark.parametrize("target,bad,message", [
    ("description", {"text": "x", "description": "  "},
     "eval.jsonl:2: empty 'description' (data.target_column: every row needs its reference text)"),
    ("description", {"text": "x", "description": 3},
     "eval.jsonl:2: 'description' (data.target_column) must be a string (the reference text), got int"),
    ("description", {"text": "x"}, "eval.jsonl:2: missing key 'description' (data.target_column)"),
    ("answers", {"text": "x", "answers": []},
     "eval.jsonl:2: 'answers' (data.target_column) lists no answer (question answering needs at least one"),
    ("answers", {"text": "x", "answers": ["", "  "]}, "eval.jsonl:2: 'answers' (data.target_column) lists no answer"),
    ("answers", {"text": "x"}, "eval.jsonl:2: missing key 'answers' (data.target_column)"),
])
def test_a_bad_generation_row_names_file_line_and_key(tmp_path, target, bad, message):
    ok = {"text": "some input", target: ["an answer"] if target == "answers" else "a summary"}
    with pytest.raises(DataError) as err:
        load_data(_cfg(tmp_path, [ok, bad], target), ["eval"], need_train=True,
                  target="answers" if target == "answers" else "text")
    assert message in str(err.value)


CHECK = ("import sys\nfrom ftlab.cli import main\ntry:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n"
         "    rc = e.code\nprint('RC', rc, 'HEAVY', [m for m in ('torch', 'transformers', 'peft') if m in sys.modules])")


@pytest.mark.parametrize("experiment,row,message", [
    ("mtsamples_summarize_smoke", {"input_text": "Chest pain.", "output_text": ""},
     "empty 'output_text' (data.target_column: every row needs its reference text)"),
    ("qa_records", {"input_text": "Patient: Ann Lee.\nQuestion: What is the patient's name?", "answers": []},
     "'answers' (data.target_column) lists no answer"),
])
def test_the_cli_stops_at_the_bad_row_before_any_model_loads(tmp_path, experiment, row, message):
    src = ROOT / "data" / ("qa_records" if experiment == "qa_records" else "mtsamples_summarize") / "eval.jsonl"
    bad = tmp_path / "eval.jsonl"
    bad.write_text(src.read_text().splitlines()[0] + "\n" + json.dumps(row) + "\n")
    res = subprocess.run([sys.executable, "-c", CHECK, f"+experiment={experiment}", "model=tiny_random",
                          f"data.eval_path={bad}", f"hydra.run.dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert f"{bad}:2: {message}" in res.stderr, res.stderr[-2000:]
    assert "RC 2 HEAVY []" in res.stdout, res.stdout[-500:]  # no torch, so no model was loaded
    from conftest import mlflow_client

    assert not [r for e in mlflow_client().search_experiments() for r in mlflow_client().search_runs([e.experiment_id])]


def _config_error(capsys, *args) -> str:
    from ftlab.cli import main

    assert main(list(args)) == 2
    return capsys.readouterr().err


def _line(path, text) -> int:
    return next(i for i, x in enumerate(path.read_text().splitlines(), 1) if x.strip() == text)


def test_an_unknown_metric_names_the_key_the_file_and_the_line(tmp_path, capsys):
    exp = tmp_path / "experiment"
    exp.mkdir()
    (exp / "my_summaries.yaml").write_text("# @package _global_\n# Run: ftlab --config-dir DIR +experiment=my_summaries\n"
                                           "defaults:\n  - mtsamples_summarize_smoke\n  - _self_\n"
                                           "eval:\n  metrics: [rouge, rogue]\n")
    err = _config_error(capsys, "--config-dir", str(tmp_path), "+experiment=my_summaries")
    assert "unknown metric 'rogue' in eval.metrics; did you mean 'rouge'?" in err
    assert f"eval.metrics is set at {(exp / 'my_summaries.yaml').resolve()}:7" in err
    err = _config_error(capsys, "+experiment=mtsamples_summarize_smoke", "eval.metrics=[bleu,rouge_l]")
    assert "unknown metric 'rouge_l' in eval.metrics" in err
    assert "eval.metrics is set at the command line (eval.metrics=[bleu,rouge_l])" in err


def test_a_task_the_backend_does_not_support_names_both_and_where_each_was_set(capsys):
    # the extractive floor's experiment sets no backend.* keys, so only the task refusal is left to report
    # (mtsamples_summarize sets local_peft's backend.train_layers: backend=tfidf there names that key)
    err = _config_error(capsys, "+experiment=mtsamples_summarize_extractive", "backend=tfidf")
    line = _line(ROOT / "experiments" / "mtsamples_summarize_extractive.yaml", "task: summarization")
    assert "eval.task=summarization is not supported by backend 'tfidf'; it supports eval.task: classification" in err
    assert f"eval.task is set at experiments/mtsamples_summarize_extractive.yaml:{line}" in err
    assert "backend is set at the command line (backend=tfidf)" in err


def test_where_set_reads_defaults_lists_and_ignores_defaults(tmp_path):
    from ftlab.config.origin import where_set

    exp = tmp_path / "experiment"
    exp.mkdir()
    (exp / "floor.yaml").write_text("# @package _global_\ndefaults:\n  - mtsamples_summarize\n"
                                    "  - override /backend: tfidf\n  - _self_\n")
    assert where_set("backend", ["+experiment=floor"], str(tmp_path)) == f"{(exp / 'floor.yaml').resolve()}:4"
    assert where_set("eval.decoding.max_new_tokens", ["+experiment=floor"], str(tmp_path)).startswith(
        "experiments/mtsamples_summarize.yaml:")
    assert where_set("train.lora.r", ["+experiment=floor"], str(tmp_path)) is None  # a default: no experiment sets it
    assert where_set("train.lora.r", ["+experiment=floor", "train.lora.r=4"]) == "the command line (train.lora.r=4)"
