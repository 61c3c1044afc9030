"""Bad data fails before any model loads, naming the key, file and line."""

from __future__ import annotations

import json

import pytest

from ftlab.config import DataConfig
from ftlab.data import DataError, load_splits

LABELS = ["A", "B"]


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(path)


def _cfg(tmp_path, train, evl, **kw):
    return DataConfig(train_path=_write(tmp_path / "train.jsonl", train),
                      eval_path=_write(tmp_path / "eval.jsonl", evl), labels=LABELS, **kw)


OK = {"input_text": "some text", "output_text": "A"}


@pytest.mark.parametrize("bad,message", [
    ({"input_text": "x"}, "eval.jsonl:2: missing key 'output_text' (data.label_column)"),
    ({"text": "x", "output_text": "A"}, "eval.jsonl:2: missing key 'input_text' (data.text_column)"),
    ({"input_text": "x", "output_text": "C"}, "eval.jsonl:2: label 'C' is not in data.labels"),
    ({"input_text": "   ", "output_text": "A"}, "eval.jsonl:2: empty 'input_text'"),
    ("{not json", "eval.jsonl:2: not valid JSON"),
])
def test_bad_rows(tmp_path, bad, message):
    cfg = _cfg(tmp_path, [OK], [OK, bad])
    with pytest.raises(DataError) as err:
        load_splits(cfg, ["eval"], need_train=True)
    assert message in str(err.value)


def test_missing_file_names_the_key(tmp_path):
    cfg = DataConfig(train_path=str(tmp_path / "nope.jsonl"), eval_path="x", labels=LABELS)
    with pytest.raises(DataError, match=r"data.train_path: file not found: .*nope.jsonl"):
        load_splits(cfg, ["eval"], need_train=True)


def test_missing_test_split_is_named(tmp_path):
    with pytest.raises(DataError, match="data.test_path is not set"):
        load_splits(_cfg(tmp_path, [OK], [OK]), ["test"], need_train=False)


def test_acceptable_from_column_and_limits(tmp_path):
    rows = [{"input_text": f"t{i}", "output_text": "A", "alt": "B;A"} for i in range(5)]
    from ftlab.config import AcceptableLabelsConfig, AcceptableSource

    cfg = _cfg(tmp_path, rows, rows, max_eval_rows=3,
               acceptable=AcceptableLabelsConfig(source=AcceptableSource.column, column="alt"))
    splits = load_splits(cfg, ["eval"], need_train=True)
    assert len(splits["eval"].examples) == 3 and len(splits["train"].examples) == 5
    assert splits["eval"].examples[0].acceptable == ("B", "A")
    assert splits["eval"].examples[1].id == "eval-1"


def test_project_data_with_index(tmp_path):
    from ftlab.config.compose import compose, validate

    cfg = validate(compose([])).data
    splits = load_splits(cfg, ["eval"], need_train=True)
    assert len(splits["train"].examples) == 519 and len(splits["eval"].examples) == 260
    multi = [ex for ex in splits["eval"].examples if len(ex.acceptable) > 1]
    assert len(multi) == 121  # the data README: 121 eval rows share their transcript
