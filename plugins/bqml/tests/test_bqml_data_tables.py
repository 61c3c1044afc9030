"""``data.train_table=project.dataset.table`` for any backend: the host's table reader, through the real
google-cloud-bigquery client, against this plugin's fake BigQuery server on 127.0.0.1. A table's
rows get the same checks as a file's, and a bad row is named ``project.dataset.table:row N``."""

from __future__ import annotations

import json

import pytest

from ftlab.config import DataConfig
from ftlab.config.data import BigQuerySourceConfig, OnError
from ftlab.data import DataError, load_data
from ftlab_bqml.testing import PROJECT

DS = "user_data"
ROWS = [{"note_id": i, "body": f"{w} notes number {i}", "topic": w.title(), "extra": "x" * 5}
        for i, w in enumerate(("tea", "rain", "bread", "rain") * 3)]


def load(client, table: str, rows: list[dict], types=None) -> str:
    """``rows`` into ``PROJECT.DS.table`` (a multipart load job); returns the table id."""
    from google.cloud import bigquery

    types = types or {"note_id": "INTEGER"}
    schema = [bigquery.SchemaField(c, types.get(c, "STRING")) for c in rows[0]]
    cfg = bigquery.LoadJobConfig(schema=schema, write_disposition="WRITE_TRUNCATE",
                                 source_format="NEWLINE_DELIMITED_JSON")
    client.load_table_from_json(rows, f"{PROJECT}.{DS}.{table}", job_config=cfg).result()
    return f"{PROJECT}.{DS}.{table}"


def cfg(fake_bq, train: str, evl=None, **kw) -> DataConfig:
    bq = BigQuerySourceConfig(api_endpoint=fake_bq.url, page_size=kw.pop("page_size", 10000), location="US")
    return DataConfig(train_table=train, eval_table=evl, bigquery=bq,
                      **{"labels": "auto", "text_column": "body", "label_column": "topic", **kw})


def test_a_table_loads_like_a_file_with_its_rows_read_page_by_page(bq_client, fake_bq, tmp_path):
    train = load(bq_client, "train", ROWS)
    data = load_data(cfg(fake_bq, train, id_column="note_id", eval_fraction=0.25, page_size=5), ["eval"],
                     need_train=True)
    assert data.labels == ("Bread", "Rain", "Tea") and data.label_counts == {"Tea": 3, "Rain": 6, "Bread": 3}
    tr, ev = data.splits["train"], data.splits["eval"]
    assert tr.format == "bigquery" and tr.path == train and len(tr.sha256) == 64
    assert len(tr.examples) + len(ev.examples) == 12 and len(ev.examples) == 4  # 1 + 2 + 1
    by_id = {r["note_id"]: r for r in ROWS}
    for ex in tr.examples + ev.examples:
        assert (ex.text, ex.label) == (by_id[int(ex.id)]["body"], by_id[int(ex.id)]["topic"])
    assert {e.source for e in tr.examples + ev.examples} == {f"{train}:row {n}" for n in range(1, 13)}
    # the same rows from a JSONL file give the same examples and the same label set
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    same = load_data(DataConfig(train_path=str(path), text_column="body", label_column="topic", labels="auto",
                                id_column="note_id", eval_fraction=0.25), ["eval"], need_train=True)
    assert [(e.id, e.text) for e in same.splits["eval"].examples] == [(e.id, e.text) for e in ev.examples]
    # only the needed columns were asked for, five rows a page: 3 pages for 12 rows
    lists = [e for e in fake_bq.log if e["route"] == "tabledata.list"]
    assert len(lists) == 3 and lists[0]["query"]["selectedFields"] == "note_id,body,topic"
    assert lists[0]["query"]["maxResults"] == "5" and "pageToken" not in lists[0]["query"]


@pytest.mark.parametrize("bad,message", [
    ({"body": None, "topic": "Tea"}, "'body' must be a string, got null"),
    ({"body": "  ", "topic": "Tea"}, "empty 'body' (an empty input cannot be classified)"),
    ({"body": "x", "topic": "Coffee"}, "label 'Coffee' is not in data.labels (3 labels from the training file)"),
])
def test_a_bad_row_in_a_table_names_the_table_and_row(bq_client, fake_bq, bad, message):
    train = load(bq_client, "train", [{k: r[k] for k in ("body", "topic")} for r in ROWS])
    evl = load(bq_client, "eval", [{k: r[k] for k in ("body", "topic")} for r in ROWS[:2]] + [bad])
    with pytest.raises(DataError) as err:
        load_data(cfg(fake_bq, train, evl), ["eval"], need_train=False)
    assert str(err.value) == f"{evl}:row 3: {message}"
    skipped = load_data(cfg(fake_bq, train, evl, on_error=OnError.skip), ["eval"], need_train=False)
    assert [r.where for r in skipped.splits["eval"].skipped] == [f"{evl}:row 3"]


def test_a_label_column_of_integers_is_the_wrong_type(bq_client, fake_bq):
    train = load(bq_client, "ints", [{"body": "a", "topic": 1}], types={"topic": "INTEGER"})
    with pytest.raises(DataError, match=rf"^{train}:row 1: 'topic' must be a string, got int$"):
        load_data(cfg(fake_bq, train), [], need_train=True)


def test_a_missing_column_and_a_missing_table_are_named(bq_client, fake_bq):
    train = load(bq_client, "train", [{"text": "a", "topic": "Tea"}])
    with pytest.raises(DataError) as err:
        load_data(cfg(fake_bq, train), [], need_train=True)
    assert str(err.value) == (f"data.train_table: {train} has no column 'body' (data.text_column); its columns "
                              f"are ['text', 'topic']")
    with pytest.raises(DataError, match=rf"^data.eval_table: table {PROJECT}.{DS}.nope not found"):
        load_data(cfg(fake_bq, train, f"{PROJECT}.{DS}.nope", text_column="text", labels=["Tea"]), ["eval"],
                  need_train=False)


def test_a_transient_server_error_while_listing_rows_is_retried_by_the_client(bq_client, fake_bq):
    train = load(bq_client, "train", [{k: r[k] for k in ("body", "topic")} for r in ROWS])
    fake_bq.faults.update(http=[{"route": "tabledata.list", "nth": 1, "code": 503}])
    data = load_data(cfg(fake_bq, train), [], need_train=True)
    assert len(data.splits["train"].examples) == 12
    assert [e["status"] for e in fake_bq.log if e["route"] == "tabledata.list"] == [503, 200]
