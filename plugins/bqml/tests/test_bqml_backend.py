"""The backend end to end through the real google-cloud-bigquery client against the fake."""

from __future__ import annotations

import io
import json

from ftlab.contract import Decoding, TrainJob

from ftlab_bqml.testing import host_report, load_examples, make_prompt


def test_full_run_base_tune_tuned_native(make_backend, fake_bq, tmp_path):
    backend, tags = make_backend()
    prompt = make_prompt()
    train, evals = load_examples("train", 150), load_examples("eval", 60)
    base = backend.base_model()
    assert base.kind == "base" and base.uri.startswith("test-project.ftlab_ds.ftlab_base_")

    before = backend.predict(base, evals, prompt, Decoding(mode="generate"))
    assert [p.id for p in before.items] == [ex.id for ex in evals]
    assert before.metrics["bqml/rows_succeeded"] == 60 and before.metrics["bqml/rows_failed"] == 0
    assert before.metrics["cost/bytes_processed"] > 0 and before.metrics["cost/bytes_billed"] >= (10 << 20)
    native_base = backend.native_evaluate(base, evals, prompt)
    rows = native_base.rows
    assert all(isinstance(v, float) for v in native_base.values())
    assert (tmp_path / "native" / "base_eval.json").exists()
    assert {"label", "precision", "recall", "f1_score", "evaluation_status"} <= set(rows[0])
    assert len(rows) == len({ex.label for ex in evals})

    out = tmp_path / "train_out"
    out.mkdir()
    trained = backend.train(TrainJob(train=train, eval=evals, prompt=prompt, out_dir=out))
    record = json.loads((out / "bqml_job.json").read_text())
    assert record["job_id"].startswith("ftlab_") and record["job_id"].endswith("_tune")
    assert record["location"] == "US" and trained.model.extra["job_id"] == record["job_id"]
    assert tags["bqml.tune_job_id"] == record["job_id"]
    assert trained.metrics["time/tune_s"] >= 0 and trained.metrics["bqml/max_iterations"] == 150
    assert trained.metrics["bqml/tune_reattached"] == 0

    after = backend.predict(trained.model, evals, prompt, Decoding(mode="generate"))
    native_tuned = backend.native_evaluate(trained.model, evals, prompt)
    f1_base, f1_tuned = (host_report(prompt, evals, p).macro_f1 for p in (before, after))
    assert f1_tuned > f1_base + 0.03, (f1_base, f1_tuned)
    assert native_tuned["macro_f1"] > native_base["macro_f1"]
    assert native_tuned["num_total_rows"] == 60
    assert any(k.startswith("per_class/") and k.endswith("/f1") for k in native_tuned)

    kinds = [k for k, _, _ in backend.runner.stats.statements]
    assert kinds == ["create_model", "upload", "generate_text", "evaluate", "upload", "create_tuned_model",
                     "generate_text", "evaluate"]
    assert fake_bq.calls_per_statement()["create_tuned_model"]["jobs.insert"] == 1


def test_dry_run_prints_statements_and_creates_nothing(make_backend, fake_bq, tmp_path):
    buf = io.StringIO()
    backend, _ = make_backend(out=buf, dry_run=True)
    prompt = make_prompt()
    evals = load_examples("eval", 12)
    preds = backend.predict(backend.base_model(), evals, prompt, Decoding())
    assert all(p.status and not p.raw_text for p in preds.items)
    out = tmp_path / "o"
    out.mkdir()
    backend.train(TrainJob(train=load_examples("train", 20), eval=evals, prompt=prompt, out_dir=out))
    text = buf.getvalue()
    for needle in ("CREATE OR REPLACE MODEL", "AI.GENERATE_TEXT", "upload: 12 rows", "[dry run] create_model:",
                   "[dry run] create_tuned_model:", "bytes"):
        assert needle in text, needle
    assert not fake_bq.engine.tables and not fake_bq.engine.models and not fake_bq.state.jobs
    assert not (out / "bqml_job.json").exists()
    assert {e["route"] for e in fake_bq.log} == {"jobs.insert"}


def test_gcs_sources_loaded_with_load_data_and_prompt_built_in_sql(make_backend, fake_bq, tmp_path):
    evals = load_examples("eval", 15)
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps({"id": ex.id, "input_text": ex.text, "output_text": ex.label}) + "\n"
                            for ex in evals))
    uri = "gs://ftlab-test/mtsamples/eval.jsonl"
    fake_bq.engine.gcs_files[uri] = str(path)
    backend, _ = make_backend(gcs_eval_uri=uri)
    prompt = make_prompt()
    preds = backend.predict(backend.base_model(), evals, prompt, Decoding())
    assert preds.metrics["bqml/rows_failed"] == 0
    kinds = [k for k, _, _ in backend.runner.stats.statements]
    assert kinds[:3] == ["create_model", "load_data", "build_prompt_table"] and "upload" not in kinds
    table = next(t for k, t in fake_bq.engine.tables.items() if not k.endswith("_raw"))
    built = {r["id"]: r["prompt"] for r in table.rows}
    assert built == {ex.id: prompt.render(ex.text) for ex in evals}  # same text as the local render
