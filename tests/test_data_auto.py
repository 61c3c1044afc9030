"""``data.labels=auto`` (the training file's labels) and ``data.eval_fraction`` (a stratified hold-out),
by themselves and through a run: printed, in the manifest, in the run folder, in the recorded config."""

from __future__ import annotations

import json
import logging
import re

import pytest
from omegaconf import OmegaConf

from ftlab.config import DataConfig
from ftlab.data import DataError, load_data

from test_data_formats import write


def rows(counts: dict[str, int]) -> list[dict]:
    return [{"input_text": f"{label} text {i}", "output_text": label}
            for label, n in counts.items() for i in range(n)]


def test_auto_labels_are_the_training_files_sorted_and_printed_with_counts(tmp_path, caplog):
    train = write(tmp_path / "train.csv", "csv", rows({"b": 2, "C": 1, "A": 3}))
    evl = write(tmp_path / "eval.csv", "csv", rows({"A": 1, "C": 1}))
    with caplog.at_level(logging.INFO, logger="ftlab"):
        data = load_data(DataConfig(train_path=train, eval_path=evl, labels="auto"), ["eval"], need_train=True)
    assert data.labels == ("A", "b", "C") and data.labels_auto  # case-insensitive order
    assert data.manifest()["data_labels"] == {"source": "auto", "labels": ["A", "b", "C"],
                                              "counts": {"b": 2, "C": 1, "A": 3}}
    text = caplog.text
    assert "data.labels=auto: 3 labels from data.train_path" in text
    assert "  3  A\n" in text and "  2  b\n" in text and "  1  C" in text
    recorded = OmegaConf.create(data.config_yaml("data:\n  labels: auto\n  name: x\n"))
    assert list(recorded.data.labels) == ["A", "b", "C"] and recorded.data.name == "x"


def test_an_eval_label_outside_the_training_files_labels_is_refused(tmp_path):
    train = write(tmp_path / "train.jsonl", "jsonl", rows({"A": 2, "B": 2}))
    evl = write(tmp_path / "eval.jsonl", "jsonl", rows({"A": 1, "Z": 1}))
    with pytest.raises(DataError) as err:
        load_data(DataConfig(train_path=train, eval_path=evl, labels="auto"), ["eval"], need_train=False)
    assert str(err.value) == (f"{evl}:2: label 'Z' is not in data.labels (2 labels from the training file)")


def test_auto_labels_need_a_training_file_even_without_the_train_stage():
    with pytest.raises(DataError, match=r"data.train_path \(or data.train_table\) is not set, and "
                                        r"data.labels=auto reads the label set from it"):
        load_data(DataConfig(eval_path="x.jsonl", labels="auto"), ["eval"], need_train=False)


@pytest.mark.parametrize("labels,message", [("every", "must be a list of labels or 'auto', got 'every'"),
                                            ([1, 2], "data.labels must be strings; got 1 (int)"),
                                            (["A", "A"], "data.labels has duplicates")])
def test_a_bad_label_setting_is_named(labels, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DataConfig(labels=labels)


def test_eval_fraction_holds_out_a_stratified_seeded_part(tmp_path, caplog):
    train = write(tmp_path / "all.parquet", "parquet", rows({"A": 10, "B": 5, "C": 1}))
    cfg = DataConfig(train_path=train, labels="auto", eval_fraction=0.2, split_seed=3)
    with caplog.at_level(logging.WARNING, logger="ftlab"):
        data = load_data(cfg, ["eval"], need_train=True)
    tr, ev = data.splits["train"].examples, data.splits["eval"].examples
    assert sorted(e.label for e in ev) == ["A", "A", "B"]  # round(10*0.2), round(5*0.2); C has one row
    assert len(tr) == 13 and {e.id for e in tr}.isdisjoint(e.id for e in ev)
    assert {e.id for e in tr} | {e.id for e in ev} == {f"train-{i}" for i in range(16)}
    assert "1 label(s) have a single row, kept in train and absent from eval: C" in caplog.text
    rec = data.holdout
    assert rec["seed"] == 3 and rec["fraction"] == 0.2 and rec["per_label"]["C"] == {"train": 1, "eval": 0}
    assert rec["eval_ids"] == [e.id for e in ev] and rec["train_ids"] == [e.id for e in tr]
    assert "eval_ids" not in data.manifest()["data_split"]
    again = load_data(cfg, ["eval"], need_train=True).splits["eval"].examples
    assert [e.id for e in again] == [e.id for e in ev]  # the seed fixes the draw
    other = DataConfig(train_path=train, labels="auto", eval_fraction=0.2, split_seed=4)
    assert [e.id for e in load_data(other, ["eval"], need_train=True).splits["eval"].examples] != [e.id for e in ev]


def test_eval_fraction_then_row_limits_apply_to_each_part(tmp_path):
    train = write(tmp_path / "all.jsonl", "jsonl", rows({"A": 20, "B": 20}))
    cfg = DataConfig(train_path=train, labels=["A", "B"], eval_fraction=0.25, max_train_rows=5, max_eval_rows=4)
    data = load_data(cfg, ["eval"], need_train=True)
    assert len(data.splits["train"].examples) == 5 and len(data.splits["eval"].examples) == 4
    assert data.holdout["rows"] == {"train": 30, "eval": 10} and data.holdout["rows_used"] == {"train": 5, "eval": 4}


@pytest.mark.parametrize("kw,message", [
    ({"eval_fraction": 0.2, "eval_path": "e.jsonl"}, "data.eval_fraction splits the training file"),
    ({"eval_fraction": 1.0}, "data.eval_fraction must be between 0 and 1"),
    ({"train_table": "p-1.d.t"}, "data.train_path and data.train_table are both set"),
    ({"train_path": None, "train_table": "project.dataset"}, "is not a BigQuery table id 'project.dataset.table'"),
    ({"bigquery": {"api_endpoint": "localhost:9050"}}, "must be an http\\(s\\) URL"),
])
def test_conflicting_data_keys_are_named(kw, message):
    from ftlab.config.data import BigQuerySourceConfig

    if "bigquery" in kw:
        kw["bigquery"] = BigQuerySourceConfig(**kw["bigquery"])
    with pytest.raises(ValueError, match=message):
        DataConfig(**{"train_path": "t.jsonl", **kw})


def test_a_missing_eval_split_suggests_eval_fraction(tmp_path):
    train = write(tmp_path / "all.jsonl", "jsonl", rows({"A": 2}))
    with pytest.raises(DataError, match=r"data.eval_path is not set but eval.splits names 'eval' \(or set "
                                        r"data.eval_fraction"):
        load_data(DataConfig(train_path=train, labels=["A"]), ["eval"], need_train=True)


def test_a_run_records_the_auto_labels_and_the_split(run_experiment, tmp_path):
    from conftest import mlflow_client

    path = write(tmp_path / "mine.csv", "csv",
                 [{"body": f"{w} words about {w}", "topic": w.title()} for w in ("tea", "rain", "bread") * 12])
    _, run_dir = run_experiment(f"data.train_path={path}", "data.eval_path=null", "data.acceptable.source=none",
                                "data.text_column=body", "data.label_column=topic", "data.labels=auto",
                                "data.eval_fraction=0.25", "data.split_seed=7", "prompt=classify_generic")
    split = json.loads((run_dir / "data" / "split.json").read_text())
    assert split["seed"] == 7 and split["rows"] == {"train": 27, "eval": 9}
    assert len(split["eval_ids"]) == 9 and not set(split["eval_ids"]) & set(split["train_ids"])
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["data_labels"]["labels"] == ["Bread", "Rain", "Tea"]
    assert man["data_labels"]["counts"] == {"Tea": 12, "Rain": 12, "Bread": 12}
    assert man["data_split"]["per_label"]["Tea"] == {"train": 9, "eval": 3}
    assert OmegaConf.load(run_dir / "config.yaml").data.labels == ["Bread", "Rain", "Tea"]
    assert list(json.loads((run_dir / "labels.json").read_text()).values()) == ["Bread", "Rain", "Tea"]
    ids = [json.loads(x)["id"] for x in (run_dir / "eval/base/eval/predictions.jsonl").read_text().splitlines()]
    assert ids == split["eval_ids"]
    client = mlflow_client()
    run = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])[0]
    assert json.loads(run.data.params["data.labels"]) == ["Bread", "Rain", "Tea"]
    assert "data/split.json" in {a.path for a in client.list_artifacts(run.info.run_id, "data")}
