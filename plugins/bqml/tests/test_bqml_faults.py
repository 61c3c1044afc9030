"""Faults: transient HTTP errors, row-level RESOURCE EXHAUSTED, failing and interrupted tuning jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftlab.contract import Decoding, TrainJob
from ftlab_bqml.testing import load_examples, make_prompt


def test_http_errors_and_row_failures_every_row_accounted(make_backend, fake_bq):
    backend, _ = make_backend(row_retries=3)
    prompt, evals = make_prompt(), load_examples("eval", 30)
    backend.predict(backend.base_model(), evals[:1], prompt, Decoding())  # create model + first table
    n0 = len(fake_bq.log)
    transient = ["eval-3", "eval-7", "eval-11"]  # fail twice, then succeed
    persistent = ["eval-5", "eval-20"]  # fail on every attempt
    fake_bq.faults.update(row_ids=transient, row_ids_always=persistent, row_attempts=2, http=[
        {"nth": n0 + 2, "code": 429}, {"nth": n0 + 5, "code": 500},
        {"route": "jobs.getQueryResults", "nth": 9, "code": 503}])
    preds = backend.predict(backend.base_model(), evals, prompt, Decoding())
    assert [p.id for p in preds.items] == [ex.id for ex in evals]
    by_id = {p.id: p for p in preds.items}
    for rid in transient:
        assert by_id[rid].status == "" and by_id[rid].raw_text
    for rid in persistent:
        assert by_id[rid].raw_text == "" and "RESOURCE EXHAUSTED" in by_id[rid].status
    assert preds.metrics["bqml/rows_failed"] == 2 and preds.metrics["bqml/rows_succeeded"] == 28
    assert preds.metrics["bqml/row_retry_rounds"] == 3
    assert preds.metrics["bqml/rows_retried"] == 5 + 5 + 2  # transient rows fail attempts 1 and 2
    injected = [e for e in fake_bq.log if e["status"] in (429, 500, 503)]
    assert len(injected) == 3  # each retried by google-cloud-bigquery's retry objects
    # each retry round re-sent only the failing rows
    retry_sql = [s for k, s, _ in backend.runner.stats.statements if k == "generate_text_retry"]
    assert len(retry_sql) == 3 and all("UNNEST(@ids)" in s for s in retry_sql)


def test_tuning_job_failing_midway_then_new_attempt(make_backend, fake_bq, tmp_path):
    backend, _ = make_backend()
    prompt = make_prompt()
    train = load_examples("train", 40)
    fake_bq.faults.update(tune_fail_at_poll=2)
    with pytest.raises(RuntimeError, match="tuning job ftlab_.*_tune failed: Tuning pipeline failed"):
        backend.train(TrainJob(train=train, eval=(), prompt=prompt, out_dir=tmp_path))
    fake_bq.faults.update(tune_fail_at_poll=None)
    again, _ = make_backend()
    trained = again.train(TrainJob(train=train, eval=(), prompt=prompt, out_dir=tmp_path))
    assert trained.model.extra["job_id"].endswith("_tune_2") and trained.metrics["bqml/tune_attempt"] == 2
    assert fake_bq.calls_per_statement()["create_tuned_model"]["jobs.insert"] == 2


def test_tuning_reattaches_after_client_process_is_killed(make_backend, fake_bq, tmp_path):
    fake_bq.faults.update(hold_tuning=True)
    child = Path(__file__).with_name("_tune_child.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, str(child), fake_bq.url, str(tmp_path), "40"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = [j for j in fake_bq.state.jobs.values() if j.kind == "create_tuned_model"]
            if jobs and jobs[0].started and jobs[0].polls >= 2 and (tmp_path / "bqml_job.json").exists():
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.05)
        else:
            pytest.fail("the child never got its tuning job RUNNING")
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    job_id = jobs[0].job_id
    assert fake_bq.state.state_of(jobs[0]) == "RUNNING"
    fake_bq.faults.update(hold_tuning=False)
    backend, tags = make_backend()
    trained = backend.train(TrainJob(train=load_examples("train", 40), eval=(), prompt=make_prompt(),
                                     out_dir=tmp_path))
    assert trained.model.extra["job_id"] == job_id and tags["bqml.tune_job_id"] == job_id
    assert trained.metrics["bqml/tune_reattached"] == 1
    assert fake_bq.calls_per_statement()["create_tuned_model"]["jobs.insert"] == 1
    assert f"{trained.model.uri}" in fake_bq.engine.models


def test_conflict_on_insert_reattaches(make_backend, fake_bq, tmp_path):
    """The job file was lost but the job exists: the 409 on insert re-attaches to it."""
    prompt, train = make_prompt(), load_examples("train", 30)
    first, _ = make_backend()
    t1 = first.train(TrainJob(train=train, eval=(), prompt=prompt, out_dir=tmp_path))
    (tmp_path / "bqml_job.json").unlink()
    second, _ = make_backend()
    t2 = second.train(TrainJob(train=train, eval=(), prompt=prompt, out_dir=tmp_path))
    assert t2.model.extra["job_id"] == t1.model.extra["job_id"] and t2.metrics["bqml/tune_reattached"] == 1
    assert [e["status"] for e in fake_bq.log if e["route"] == "jobs.insert"
            and e["statement"] == "create_tuned_model"] == [200, 409]
