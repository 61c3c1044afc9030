"""The fake BigQuery speaks the REST protocol the real google-cloud-bigquery client expects."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from ftlab_bqml import sql
from ftlab_bqml.testing import PROJECT

DS = "ftlab_ds"
T, M = sql.ref(PROJECT, DS, "t"), sql.ref(PROJECT, DS, "m")
ROWS = [{"id": f"r-{i}", "input_text": "tooth" if i % 2 else "heart", "output_text": "Dentistry" if i % 2 else
         "Cardiovascular / Pulmonary", "prompt": "- Dentistry\n- Cardiovascular / Pulmonary\n" +
         ("dentistry tooth" if i % 2 else "cardiovascular heart")} for i in range(12)]


def _load(client, rows=ROWS, table="t"):
    from google.cloud import bigquery

    cfg = bigquery.LoadJobConfig(schema=[bigquery.SchemaField(c, "STRING") for c in sql.UPLOAD_COLUMNS],
                                 write_disposition="WRITE_TRUNCATE", source_format="NEWLINE_DELIMITED_JSON")
    return client.load_table_from_json(rows, f"{PROJECT}.{DS}.{table}", job_config=cfg).result()


def test_multipart_ndjson_and_parquet_uploads_then_tables_get(bq_client, fake_bq):
    import pandas as pd

    job = _load(bq_client)
    assert job.state == "DONE" and job.output_rows == 12
    bq_client.load_table_from_dataframe(pd.DataFrame(ROWS), f"{PROJECT}.{DS}.pq").result()
    table = bq_client.get_table(f"{PROJECT}.{DS}.pq")
    assert table.num_rows == 12 and [f.name for f in table.schema] == list(sql.UPLOAD_COLUMNS)
    uploads = [e for e in fake_bq.log if e["route"] == "upload"]
    assert len(uploads) == 2 and all(e["query"]["uploadType"] == "multipart" for e in uploads)


def test_select_reads_schema_then_rows(bq_client, fake_bq):
    from google.api_core import exceptions

    _load(bq_client)
    with pytest.raises(exceptions.NotFound):
        bq_client.get_table(f"{PROJECT}.{DS}.missing")
    ddl = bq_client.query(sql.create_base_model(M, "DEFAULT", "gemini-2.0-flash-001"))
    assert list(ddl.result()) == [] and ddl.statement_type == "CREATE_MODEL"
    n = len(fake_bq.log)
    job = bq_client.query(sql.generate_text(M, T, 16, 0.0, 1.0))  # AI.GENERATE_TEXT, the default
    df = job.to_dataframe()
    assert len(df) == 12 and set(df["status"]) == {""} and list(df.columns) == ["id", "prompt", "result", "status"]
    calls = [(e["route"], e["query"].get("maxResults")) for e in fake_bq.log[n:]]
    assert calls[0] == ("jobs.insert", None)
    results = [c for c in calls if c[0] == "jobs.getQueryResults"]
    assert results[0][1] == "0" and results[-1][1] is None  # schema call, then the rows call


def test_cells_are_strings_and_location_is_echoed(bq_client, fake_bq):
    _load(bq_client)
    bq_client.query(sql.create_base_model(M, "DEFAULT", "gemini-2.0-flash-001")).result()
    job = bq_client.query(sql.evaluate(M, T, False, "CLASSIFICATION", 16, 0.0, 1.0), location="EU")
    assert job.location == "EU"
    job.result()
    raw = json.loads(urllib.request.urlopen(
        f"{fake_bq.url}/bigquery/v2/projects/{PROJECT}/queries/{job.job_id}?location=EU").read())
    assert raw["jobReference"]["location"] == "EU" and raw["jobComplete"] is True
    cells = [c["v"] for row in raw["rows"] for c in row["f"]]
    assert all(isinstance(c, str) for c in cells)
    assert all(e["query"].get("location") in (None, "EU") for e in fake_bq.log if e.get("job_id") == job.job_id)
    from google.api_core import exceptions
    with pytest.raises(exceptions.NotFound):
        bq_client.get_job(job.job_id, location="US")


def test_job_states_pending_running_done(bq_client, fake_bq):
    _load(bq_client, table="train")
    job = bq_client.query(sql.create_tuned_model(
        M, "DEFAULT", sql.ref(PROJECT, DS, "train"), sql.TuneOptions("gemini-2.0-flash-001", 12, 1.0)),
        job_id="tune-1", job_retry=None)
    seen = [job.state]
    while job.state != "DONE":
        job.reload()
        seen.append(job.state)
    assert seen == ["PENDING", "RUNNING", "RUNNING", "DONE"]
    model = bq_client.get_model(f"{PROJECT}.{DS}.m")
    assert model.model_type == "MODEL_TYPE_UNSPECIFIED"
    assert model._properties["remoteModelInfo"]["endpoint"] == "gemini-2.0-flash-001"


def test_errors_have_bigquery_shape(bq_client, fake_bq):
    from google.api_core import exceptions

    _load(bq_client)
    with pytest.raises(exceptions.BadRequest, match="invalidQuery"):
        bq_client.query("SELECT * FROM `test-project.ftlab_ds.t`").result()
    with pytest.raises(exceptions.NotFound, match="Model test-project:ftlab_ds.nope"):
        bq_client.query(sql.generate_text(sql.ref(PROJECT, DS, "nope"), T, 16, 0.0, 1.0)).result()
    bq_client.query(sql.create_base_model(M, "DEFAULT", "gemini-2.0-flash-001")).result()
    with pytest.raises(exceptions.BadRequest, match="untuned remote model must have columns input_text"):
        bq_client.query(sql.evaluate(M, T, True, "CLASSIFICATION", 16, 0.0, 1.0)).result()
    with pytest.raises(exceptions.Conflict):
        bq_client.query(sql.create_base_model(M, "DEFAULT", "g"), job_id="same", job_retry=None)
        bq_client.query(sql.create_base_model(M, "DEFAULT", "g"), job_id="same", job_retry=None)
    body = json.dumps({"query": "DROP TABLE x"}).encode()
    req = urllib.request.Request(f"{fake_bq.url}/bigquery/v2/projects/{PROJECT}/queries", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    payload = json.loads(err.value.read())
    assert payload["error"]["code"] == 400 and payload["error"]["errors"][0]["reason"] == "invalidQuery"


def test_jobs_query_dry_run_and_admin_faults(bq_client, fake_bq):
    from google.cloud import bigquery

    _load(bq_client)
    bq_client.query(sql.create_base_model(M, "DEFAULT", "gemini-2.0-flash-001")).result()
    rows = list(bq_client.query_and_wait(sql.generate_text(M, T, 16, 0.0, 1.0)))
    assert len(rows) == 12 and any(e["route"] == "jobs.query" for e in fake_bq.log)
    dry = bq_client.query(sql.generate_text(M, T, 16, 0.0, 1.0),
                          job_config=bigquery.QueryJobConfig(dry_run=True, use_query_cache=False))
    assert dry.total_bytes_processed > 0
    req = urllib.request.Request(f"{fake_bq.url}/_fake/faults", method="POST",
                                 data=json.dumps({"row_ids": ["r-1"], "row_attempts": 1}).encode())
    urllib.request.urlopen(req).read()
    df = bq_client.query(sql.generate_text(M, T, 16, 0.0, 1.0, function="ml")).to_dataframe()
    status = dict(zip(df["id"], df["ml_generate_text_status"]))
    assert status["r-1"] == "A retryable error occurred: RESOURCE EXHAUSTED error from gemini-2.0-flash-001"
    assert status["r-2"] == ""


def test_module_entry_point_serves_on_localhost():
    proc = subprocess.Popen([sys.executable, "-m", "ftlab_bqml.fake", "--port", "0"], stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("fake BigQuery listening on http://127.0.0.1:")
        url = line.split()[-1]
        state = json.loads(urllib.request.urlopen(f"{url}/_fake/state").read())
        assert state == {"tables": {}, "models": {}, "jobs": {}}
    finally:
        proc.terminate()
        proc.wait(10)


def test_fake_ml_evaluate_numbers_are_the_host_evaluator_s():
    """Hand-computed ML.EVALUATE rows; the backend's native macro-F1 equals the host's on them."""
    from ftlab.contract import UNPARSEABLE
    from ftlab.metrics.classification import classification_report
    from ftlab_bqml.native import flatten_evaluation
    from ftlab_bqml.fake.models import classification_rows

    truth, answers = ["A", "A", "B", "C"], [" A", "B", "B\n", "junk"]
    rows = classification_rows(truth, answers, 4)
    assert [r["label"] for r in rows] == ["A", "B", "C"]
    got = [v for r in rows for v in (r["precision"], r["recall"], r["f1_score"])]
    assert got == pytest.approx([1.0, 0.5, 2 / 3, 0.5, 1.0, 2 / 3, 0.0, 0.0, 0.0])
    native = flatten_evaluation(rows)
    assert native["macro_f1"] == pytest.approx(4 / 9) and native["num_total_rows"] == 4
    host = classification_report(truth, ["A", "B", "B", UNPARSEABLE], ["A", "B", "C"]).macro_f1
    assert native["macro_f1"] == host
