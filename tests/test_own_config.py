"""A user's own config folder outside the repository: ``ftlab --config-dir DIR +experiment=mine`` with
the user's experiment, data and prompt files, and ``ftlab init DIR --data FILE`` that writes them."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from test_data_formats import write

EXPERIMENT = """# @package _global_
# Run: ftlab --config-dir DIR +experiment=mine
defaults:
  - override /data: mine
  - override /prompt: mine
  - override /backend: fake
experiment: mine
"""
DATA = """name: mine
train_path: {path}
text_column: body
label_column: topic
labels: auto
eval_fraction: 0.25
"""
PROMPT = """defaults:
  - classify_generic
  - _self_
name: mine
template: |-
  Which topic is this? {labels}
  {text}
"""


def topics(n: int = 12) -> list[dict]:
    return [{"body": f"{w} words about {w} and more {w}", "topic": w.title()} for w in ("tea", "rain", "bread") * n]


@pytest.fixture
def user_dir(tmp_path):
    """``tmp/elsewhere/{experiment,data,prompt}/mine.yaml`` and a CSV beside them, outside the repo."""
    d = tmp_path / "elsewhere"
    for sub, text in (("experiment", EXPERIMENT), ("data", DATA.format(path=d / "mine.csv")), ("prompt", PROMPT)):
        (d / sub).mkdir(parents=True)
        (d / sub / "mine.yaml").write_text(text)
    write(d / "mine.csv", "csv", topics())
    return d


def test_compose_reads_the_users_experiment_data_and_prompt(user_dir, fake_backend):
    from ftlab.config.compose import compose, validate

    cfg = validate(compose(["+experiment=mine"], fake_backend, config_dir=str(user_dir)))
    assert (cfg.experiment, cfg.data.name, cfg.prompt.name, cfg.backend.name) == ("mine", "mine", "mine", "fake")
    assert cfg.data.labels_auto and cfg.prompt.template.startswith("Which topic is this?")
    assert cfg.prompt.label_line == "- {label}"  # the rest comes from prompt=classify_generic


def test_the_command_runs_the_users_experiment(user_dir, fake_backend, tmp_path, capsys):
    from conftest import mlflow_client
    from ftlab.cli import main

    run_dir = tmp_path / "run"
    assert main(["--config-dir", str(user_dir), "+experiment=mine", f"hydra.run.dir={run_dir}"]) == 0
    recorded = OmegaConf.load(run_dir / "config.yaml")
    assert recorded.prompt.name == "mine" and list(recorded.data.labels) == ["Bread", "Rain", "Tea"]
    assert json.loads((run_dir / "data" / "split.json").read_text())["rows"] == {"train": 27, "eval": 9}
    assert recorded.prompt.template.startswith("Which topic is this?")
    client = mlflow_client()
    (run,) = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    assert run.info.status == "FINISHED" and "compare/eval/macro_f1_delta" in run.data.metrics


@pytest.mark.parametrize("form", ["--config-dir=", "-cd"])
def test_other_spellings_of_the_flag_and_a_folder_that_is_not_there(user_dir, fake_backend, capsys, form):
    from ftlab.cli import main

    args = [f"{form}{user_dir / 'nope'}"] if form.endswith("=") else [form, str(user_dir / "nope")]
    assert main([*args, "+experiment=mine"]) == 2
    assert f"--config-dir {user_dir / 'nope'}: no such folder" in capsys.readouterr().err


def test_without_the_folder_the_experiment_is_unknown_by_name(fake_backend, capsys):
    from ftlab.cli import main

    assert main(["+experiment=mine"]) == 2
    assert "unknown option 'mine' for config group 'experiment'" in capsys.readouterr().err


def test_init_writes_a_starting_experiment_that_runs(tmp_path, fake_backend, capsys):
    from ftlab.cli import main

    data = write(tmp_path / "my data.csv", "csv", [{"text": r["body"], "label": r["topic"]} for r in topics()])
    folder = tmp_path / "mine"
    assert main(["init", str(folder), "--data", data, "--backend", "fake"]) == 0
    out = capsys.readouterr().out
    assert "30 train / 6 eval rows, 3 labels" in out and f"ftlab --config-dir {folder} +experiment=my_data" in out
    exp = (folder / "experiment" / "my_data.yaml").read_text()
    assert exp.startswith("# @package _global_\n# Run: ftlab --config-dir")
    cfg = OmegaConf.load(folder / "data" / "my_data.yaml")
    assert (cfg.train_path, cfg.text_column, cfg.label_column, cfg.labels, cfg.eval_fraction, cfg.on_error) == \
        (data, "text", "label", "auto", 0.2, "fail")
    assert "Classify the text into one of these categories" in (folder / "prompt" / "my_data.yaml").read_text()
    assert main(["--config-dir", str(folder), "+experiment=my_data", f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    assert (tmp_path / "run" / "data" / "split.json").is_file()
    # a second init does not overwrite what the user may have edited
    assert main(["init", str(folder), "--data", data]) == 2
    assert "exist(s); pass --force to overwrite" in capsys.readouterr().err


def test_init_names_columns_it_cannot_guess_and_counts_bad_rows(tmp_path, fake_backend, capsys):
    from ftlab.cli import main

    data = write(tmp_path / "notes.jsonl", "jsonl", [{"note": "a b", "kind": "X"}, {"note": " ", "kind": "Y"},
                                                    {"note": "c d", "kind": "Y"}, {"note": "e", "kind": "X"}])
    with pytest.raises(SystemExit, match=r"no obvious text column among \['note', 'kind'\]; pass --text-column"):
        main(["init", str(tmp_path / "c"), "--data", data])
    evl = write(tmp_path / "held.jsonl", "jsonl", [{"note": "f g", "kind": "X"}])
    assert main(["init", str(tmp_path / "c"), "--data", data, "--eval", evl, "--text-column", "note",
                 "--label-column", "kind", "--name", "notes"]) == 0
    text = (tmp_path / "c" / "data" / "notes.yaml").read_text()
    cfg = OmegaConf.create(text)
    assert cfg.eval_path == evl and "eval_fraction" not in cfg and cfg.on_error == "skip"
    assert "found 1 bad rows (empty_text=1)" in text


def test_init_reads_the_columns_of_a_parquet_file(tmp_path, fake_backend, capsys):
    from ftlab.cli import main

    data = write(tmp_path / "rows.parquet", "parquet", [{"text": r["body"], "label": r["topic"]} for r in topics(4)])
    assert main(["init", str(tmp_path / "c"), "--data", data]) == 0
    assert "9 train / 3 eval rows, 3 labels" in capsys.readouterr().out
    cfg = OmegaConf.load(tmp_path / "c" / "data" / "rows.yaml")
    assert (cfg.text_column, cfg.label_column, cfg.format) == ("text", "label", "auto")
