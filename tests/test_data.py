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


def test_a_number_where_the_text_should_be_names_its_type(tmp_path):
    cfg = _cfg(tmp_path, [OK], [OK, OK, {"input_text": 42, "output_text": "A"}])
    with pytest.raises(DataError) as err:
        load_splits(cfg, ["eval"], need_train=True)
    assert "eval.jsonl:3: 'input_text' must be a string, got int" in str(err.value)


def test_a_null_label_names_its_type(tmp_path):
    cfg = _cfg(tmp_path, [OK], [{"input_text": "x", "output_text": None}])
    with pytest.raises(DataError, match=r"eval.jsonl:1: 'output_text' must be a string, got null"):
        load_splits(cfg, ["eval"], need_train=True)


def test_utf8_bom_and_crlf_load(tmp_path):
    """What spreadsheet exports produce: BOM first, CRLF line endings."""
    rows = [{"input_text": "caf\u00e9 au lait", "output_text": "A"}, {"input_text": "b", "output_text": "B"}]
    body = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n"
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    cfg = DataConfig(train_path=str(path), eval_path=str(path), labels=LABELS)
    ex = load_splits(cfg, ["eval"], need_train=False)["eval"].examples
    assert [(e.text, e.label) for e in ex] == [("caf\u00e9 au lait", "A"), ("b", "B")]
    assert not any("\r" in e.text or "\ufeff" in e.text for e in ex)


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(OK).encode() + b"\n" + '{"input_text": "caf\xe9", "output_text": "A"}\n'
                     .encode("latin-1"))
    cfg = DataConfig(train_path=str(path), eval_path=str(path), labels=LABELS)
    with pytest.raises(DataError, match=r"latin1.jsonl:2: not UTF-8"):
        load_splits(cfg, ["eval"], need_train=False)


BAD_ROWS = [OK, "{not json", {"input_text": 7, "output_text": "A"}, OK, "[1, 2]",
            {"input_text": "x", "output_text": "C"}, {"input_text": " ", "output_text": "B"},
            {"text": "x", "output_text": "A"}, {"input_text": "y", "output_text": "B"}]


def test_skip_policy_counts_bad_rows_by_reason(tmp_path):
    from ftlab.config import OnError
    from ftlab.data import skipped_summary

    cfg = _cfg(tmp_path, [OK], BAD_ROWS, on_error=OnError.skip)
    splits = load_splits(cfg, ["eval"], need_train=True)
    ev = splits["eval"]
    assert [e.id for e in ev.examples] == ["eval-0", "eval-3", "eval-8"]
    assert ev.skipped_counts() == {"invalid_json": 1, "wrong_type": 1, "not_an_object": 1,
                                   "unknown_label": 1, "empty_text": 1, "missing_key": 1}
    assert [r.line for r in ev.skipped] == [2, 3, 5, 6, 7, 8]
    assert ev.skipped[1].message == "'input_text' must be a string, got int"
    metrics, rows = skipped_summary(splits)
    assert metrics["data/eval/skipped_rows"] == 6 and metrics["data/eval/skipped/wrong_type"] == 1
    assert "data/train/skipped_rows" not in metrics
    assert rows[0] == {"split": "eval", "file": str(tmp_path / "eval.jsonl"), "line": 2,
                       "where": f"{tmp_path / 'eval.jsonl'}:2", "reason": "invalid_json",
                       "message": rows[0]["message"], "raw": "{not json"}


def test_default_policy_still_fails_at_the_first_bad_row(tmp_path):
    with pytest.raises(DataError, match=r"eval.jsonl:2: not valid JSON"):
        load_splits(_cfg(tmp_path, [OK], BAD_ROWS), ["eval"], need_train=True)


def test_skip_policy_with_nothing_left_says_so(tmp_path):
    from ftlab.config import OnError

    cfg = _cfg(tmp_path, [OK], ["{bad", "{bad"], on_error=OnError.skip)
    with pytest.raises(DataError, match=r"has no rows \(2 skipped as bad"):
        load_splits(cfg, ["eval"], need_train=True)
