"""JSONL, CSV, TSV and Parquet files load to the same examples, through the same row checks, and a bad
row in each is named by its file and line (``file:line``) or row (``file:row N``)."""

from __future__ import annotations

import csv
import json

import pytest

from ftlab.config import DataConfig
from ftlab.config.data import DataFormat, OnError
from ftlab.data import DataError, load_data, load_splits

LABELS = ["A", "B"]
FORMATS = ["jsonl", "csv", "tsv", "parquet"]
ROWS = [{"input_text": "alpha beta", "output_text": "A"},
        {"input_text": "a cell over\ntwo lines, with \"quotes\", commas\tand a tab", "output_text": "B"},
        {"input_text": "gamma", "output_text": "A"}]


def write(path, fmt, rows, header=None):
    """``rows`` (dicts) as a file of format ``fmt``; ``header`` overrides the columns (CSV/TSV/Parquet)."""
    cols = header or list(rows[0])
    if fmt == "jsonl":
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    elif fmt in ("csv", "tsv"):
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, delimiter="," if fmt == "csv" else "\t")
            w.writerow(cols)
            w.writerows([r if isinstance(r, list) else [r.get(c) for c in rows[0]] for r in rows])
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = {c: [r.get(k) for r in rows] for c, k in zip(cols, rows[0])}
        pq.write_table(pa.table(data), path)
    return str(path)


def cfg_for(tmp_path, fmt, train, evl, **kw):
    return DataConfig(train_path=write(tmp_path / f"train.{fmt}", fmt, train),
                      eval_path=write(tmp_path / f"eval.{fmt}", fmt, evl), labels=kw.pop("labels", LABELS), **kw)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_loads_the_same_examples(tmp_path, fmt):
    splits = load_splits(cfg_for(tmp_path, fmt, ROWS, ROWS), ["eval"], need_train=True)
    got = [(e.id, e.text, e.label) for e in splits["eval"].examples]
    assert got == [(f"eval-{i}", r["input_text"], r["output_text"]) for i, r in enumerate(ROWS)]
    assert splits["eval"].format == fmt and len(splits["eval"].sha256) == 64


# The third data row is bad. It starts on line 3 of the JSONL file and on line 5 of the CSV/TSV file
# (the header is line 1 and the second row's cell spans two lines): rows are named by where they start.
WHERE = {"jsonl": "eval.jsonl:3", "csv": "eval.csv:5", "tsv": "eval.tsv:5", "parquet": "eval.parquet:row 3"}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("bad,message", [
    ({"input_text": "   ", "output_text": "A"}, "empty 'input_text' (an empty input cannot be classified)"),
    ({"input_text": "x", "output_text": "C"}, "label 'C' is not in data.labels (2 labels configured)"),
    ({"input_text": "x", "output_text": ""}, "empty 'output_text' (every row needs its label)"),
])
def test_a_bad_row_in_each_format_names_file_and_line_or_row(tmp_path, fmt, bad, message):
    cfg = cfg_for(tmp_path, fmt, ROWS, ROWS[:2] + [bad])
    with pytest.raises(DataError) as err:
        load_splits(cfg, ["eval"], need_train=True)
    assert str(err.value) == f"{tmp_path / WHERE[fmt].split(':')[0]}:{WHERE[fmt].split(':', 1)[1]}: {message}"


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_null_text_names_its_type(tmp_path, fmt):
    cfg = cfg_for(tmp_path, fmt, ROWS, ROWS[:2] + [{"input_text": None, "output_text": "A"}])
    with pytest.raises(DataError, match=rf"{WHERE[fmt]}: 'input_text' must be a string, got null$"):
        load_splits(cfg, ["eval"], need_train=True)


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_a_row_of_the_wrong_width_names_its_line(tmp_path, fmt):
    cfg = cfg_for(tmp_path, fmt, ROWS, ROWS[:2] + [["x", "A", "surplus"]])
    with pytest.raises(DataError, match=rf"{WHERE[fmt]}: 3 fields, the header has 2$"):
        load_splits(cfg, ["eval"], need_train=True)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet"])
def test_a_header_without_the_text_column_fails_once_naming_key_and_columns(tmp_path, fmt):
    path = write(tmp_path / f"eval.{fmt}", fmt, ROWS, header=["input_txt", "output_text"])
    cfg = DataConfig(train_path=path, eval_path=path, labels=LABELS)
    with pytest.raises(DataError) as err:
        load_splits(cfg, ["eval"], need_train=False)
    assert str(err.value) == (f"data.eval_path: {path} has no column 'input_text' (data.text_column); its "
                              f"columns are ['input_txt', 'output_text']; did you mean 'input_txt'? "
                              f"(set data.text_column=input_txt)")


@pytest.mark.parametrize("fmt", FORMATS)
def test_skip_policy_counts_the_same_reasons_in_every_format(tmp_path, fmt):
    bad = [{"input_text": " ", "output_text": "A"}, {"input_text": "y", "output_text": "C"},
           {"input_text": "z", "output_text": ""}]
    cfg = cfg_for(tmp_path, fmt, ROWS, ROWS + bad, on_error=OnError.skip)
    ev = load_splits(cfg, ["eval"], need_train=True)["eval"]
    assert len(ev.examples) == 3
    assert ev.skipped_counts() == {"empty_text": 1, "unknown_label": 1, "empty_label": 1}
    first = {"jsonl": 4, "csv": 6, "tsv": 6, "parquet": 4}[fmt]
    assert [r.line for r in ev.skipped] == [first, first + 1, first + 2]
    assert '"y"' in ev.skipped[1].raw and ev.skipped[1].where.endswith(f"{first + 1}")


def test_csv_with_bom_and_crlf_loads(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbfinput_text,output_text\r\ncaf\xc3\xa9,A\r\n\"b\r\nc\",B\r\n")
    cfg = DataConfig(train_path=str(path), eval_path=str(path), labels=LABELS)
    ex = load_splits(cfg, ["eval"], need_train=False)["eval"].examples
    assert [(e.text, e.label) for e in ex] == [("caf\u00e9", "A"), ("b\r\nc", "B")]


def test_the_format_comes_from_the_extension_or_the_key(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text("input_text\toutput_text\nhello\tA\n")
    cfg = DataConfig(train_path=str(path), eval_path=str(path), labels=LABELS)
    with pytest.raises(DataError, match=r"data.eval_path: cannot tell the format of .*rows.txt from its "
                                        r"extension '.txt' .*; set data.format to one of jsonl, csv, tsv, parquet"):
        load_splits(cfg, ["eval"], need_train=False)
    cfg.format = DataFormat.tsv
    assert load_splits(cfg, ["eval"], need_train=False)["eval"].examples[0].text == "hello"


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    path = tmp_path / "eval.parquet"
    path.write_text("not parquet")
    cfg = DataConfig(train_path=str(path), eval_path=str(path), labels=LABELS)
    with pytest.raises(DataError, match=r"data.eval_path: .*eval.parquet is not a Parquet file"):
        load_splits(cfg, ["eval"], need_train=False)


def test_an_id_column_gives_the_ids_and_a_repeated_id_is_named(tmp_path):
    rows = [{"id": "n1", "input_text": "a", "output_text": "A"}, {"id": "n2", "input_text": "b", "output_text": "B"}]
    cfg = cfg_for(tmp_path, "csv", rows, rows + [{"id": "n1", "input_text": "c", "output_text": "A"}],
                  id_column="id")
    with pytest.raises(DataError, match=r"eval.csv:4: id 'n1' \(data.id_column\) is used already, at .*eval.csv:2$"):
        load_data(cfg, ["eval"], need_train=True)
    assert [e.id for e in load_data(cfg, [], need_train=True).splits["train"].examples] == ["n1", "n2"]


def test_acceptable_labels_from_a_parquet_list_column(tmp_path):
    from ftlab.config import AcceptableLabelsConfig, AcceptableSource

    rows = [{"input_text": "a", "output_text": "A", "alt": ["B", "Z"]}, {"input_text": "b", "output_text": "B", "alt": []}]
    cfg = cfg_for(tmp_path, "parquet", rows, rows,
                  acceptable=AcceptableLabelsConfig(source=AcceptableSource.column, column="alt"))
    ev = load_splits(cfg, ["eval"], need_train=False)["eval"].examples
    assert [e.acceptable for e in ev] == [("A", "B"), ()]  # the row's own label first; Z is no label
