"""The ``bqml`` Backend: upload splits, create the remote model, predict, tune, evaluate natively.

Prompt handling: each row's prompt is rendered in Python by the host's ``Prompt.render`` (the
host's character budget ``prompt.max_input_chars``, no token cut, no chat template: the remote model
wraps it itself) and uploaded as the ``prompt`` column next to ``id``, ``input_text`` and
``output_text`` (the label, or a generation task's reference: ``Example.target``); every statement
reads that column, and predictions read it back from the generate function's output
(``backend.generate_function``: ``AI.GENERATE_TEXT`` by default), so each prediction records the
text BigQuery used. local_peft sends the
same instruction only under a host budget (``prompt=classify_portable``); docs/backends/README.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from ftlab.contract import Decoding, Example, ModelRef, Prediction, Predictions, TrainedModel, TrainJob

from ftlab_bqml import jobs, sql, tuning
from ftlab_bqml.native import NativeEvaluation, flatten_evaluation

DRY_RUN_STATUS = "dry_run: nothing was sent"


def _sha(obj: Any, n: int = 10) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _split_of(examples: Sequence[Example]) -> str:
    first = examples[0].id if examples else "rows"
    name = first.rsplit("-", 1)[0] if "-" in first else "rows"
    return re.sub(r"[^A-Za-z0-9_]", "_", name)[:40] or "rows"


class BqmlBackend:
    """BigQuery ML remote-model backend (see docs/backends/bqml.md)."""

    def __init__(self, cfg, ctx, client=None, out=sys.stdout) -> None:
        self.run_cfg = cfg
        self.cfg = cfg.backend
        self.ctx = ctx
        self.out = out
        self.runner = jobs.Runner(self.cfg, client=client, out=out)
        self._tables: dict[str, str] = {}
        self._base_ready = False
        model = getattr(cfg, "model", None)
        source = getattr(model, "source", None)
        self.endpoint = (model.endpoint if source == "remote_endpoint" and getattr(model, "endpoint", None)
                         else self.cfg.endpoint)
        """model.endpoint (when model.source=remote_endpoint) wins over backend.endpoint."""
        from ftlab_bqml.validate import check_endpoint

        check_endpoint("endpoint", self.endpoint)
        self.plan = tuning.plan(cfg)
        """Tuning options and task type from backend.*, train.* and eval.task (checked before any SQL)."""

    # -- names -------------------------------------------------------------------------------
    def _ref(self, name: str) -> str:
        return sql.ref(self.cfg.project, self.cfg.dataset, name)

    def _model_ref(self, model: ModelRef) -> str:
        project, dataset, name = model.uri.split(".")
        return sql.ref(project, dataset, name)

    def base_model(self) -> ModelRef:
        name = f"{self.cfg.name_prefix}_base_{_sha([self.endpoint, self.cfg.connection], 8)}"
        return ModelRef(backend="bqml", kind="base", uri=f"{self.cfg.project}.{self.cfg.dataset}.{name}",
                        extra={"endpoint": self.endpoint, "location": self.cfg.location})

    def _gen_params(self, decoding: Optional[Decoding]) -> tuple[int, float, float]:
        d = decoding or getattr(getattr(self.run_cfg, "eval", None), "decoding", None) or Decoding()
        pick = lambda own, host: own if own is not None else host  # noqa: E731
        return (int(pick(self.cfg.max_output_tokens, d.max_new_tokens)),
                float(pick(self.cfg.temperature, d.temperature)), float(pick(self.cfg.top_p, d.top_p)))

    # -- statements ------------------------------------------------------------------------------
    def _send(self, kind: str, statement: str, params=None) -> list[dict]:
        if self.cfg.dry_run:
            self.runner.dry_run(kind, statement, params)
            return []
        return self.runner.run(kind, statement, params)

    def _ensure_model(self, model: ModelRef) -> None:
        if model.kind == "base" and not self._base_ready:
            self._send("create_model", sql.create_base_model(self._model_ref(model), self.cfg.connection,
                                                             model.extra.get("endpoint", self.endpoint)))
            self._base_ready = True

    def _table_for(self, examples: Sequence[Example], prompt) -> str:
        """The split's table (uploaded or loaded once per process); returns its backticked ref."""
        split = _split_of(examples)
        uri = {"train": self.cfg.gcs_train_uri, "eval": self.cfg.gcs_eval_uri}.get(split)
        if uri:
            prefix, suffix = sql.prompt_pieces(prompt)
            key = _sha([uri, prefix, suffix, prompt.max_input_chars, prompt.truncation_side])
        else:
            rows = [{"id": ex.id, "input_text": ex.text, "output_text": ex.target, "prompt": prompt.render(ex.text)}
                    for ex in examples]
            key = _sha(rows)
        name = f"{self.cfg.name_prefix}_{split}_{key}"
        if name in self._tables:
            return self._tables[name]
        table = self._ref(name)
        if uri:
            raw = self._ref(f"{name}_raw")
            self._send("load_data", sql.load_data(raw, uri))
            self._send("build_prompt_table", sql.build_prompt_table(table, raw, prompt.truncation_side),
                       {"prompt_prefix": prefix, "prompt_suffix": suffix,
                        "max_input_chars": int(prompt.max_input_chars or 0)})
        elif self.cfg.dry_run:
            print(f"-- [dry run] upload: {len(rows)} rows to {table} (load job, not sent)\n", file=self.out)
        else:
            self._upload(f"{self.cfg.project}.{self.cfg.dataset}.{name}", rows)
        self._tables[name] = table
        return table

    def _upload(self, table_id: str, rows: list[dict]) -> None:
        from google.cloud import bigquery

        config = bigquery.LoadJobConfig(
            schema=[bigquery.SchemaField(c, "STRING") for c in sql.UPLOAD_COLUMNS],
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON)
        t0 = time.monotonic()
        job = self.runner.client.load_table_from_json(rows, table_id, job_config=config,
                                                      location=self.cfg.location, job_id_prefix="ftlab_upload_")
        job.result(retry=self.runner.http_retry)
        self.runner.stats.add("upload", job, time.monotonic() - t0)
        self.runner.stats.statements.append(("upload", f"load job → {table_id} ({len(rows)} rows)", job.job_id))

    # -- predict ---------------------------------------------------------------------------------
    def predict(self, model: ModelRef, examples: Sequence[Example], prompt: Any,
                decoding: Decoding) -> Predictions:
        """The generate function over the split; rows with a non-empty status are retried alone.

        The answer is the raw text (the host parses a label only for classification), cut before the
        first ``decoding.stop`` string: the cut is made here rather than sent as ``stop_sequences``, so
        no configured text enters the SQL (under greedy decoding the text is the same)."""
        t0 = time.monotonic()
        start = self.runner.stats.snapshot()
        self._ensure_model(model)
        table = self._table_for(examples, prompt)
        tokens, temperature, top_p = self._gen_params(decoding)
        model_sql = self._model_ref(model)
        function = self.cfg.generate_function
        text_col, status_col = sql.GENERATE_COLUMNS[function]
        rows = self._send("generate_text", sql.generate_text(model_sql, table, tokens, temperature, top_p,
                                                             function=function))
        if self.cfg.dry_run:
            items = tuple(Prediction(id=ex.id, raw_text="", status=DRY_RUN_STATUS) for ex in examples)
            return Predictions(model=model, items=items, metrics={})
        results: dict[str, tuple[str, str]] = {}
        sent: dict[str, str] = {}
        wanted = {ex.id for ex in examples}
        rounds = retried = 0
        while True:
            for r in rows:
                results[str(r["id"])] = (r.get(text_col) or "", r.get(status_col) or "")
                sent[str(r["id"])] = r.get("prompt") or ""
            failing = sorted(i for i in wanted if i not in results or results[i][1])
            if not failing or rounds >= self.cfg.row_retries:
                break
            time.sleep(self.cfg.row_retry_backoff_s * (2 ** rounds))
            rounds += 1
            retried += len(failing)
            rows = self.runner.run("generate_text_retry",
                                   sql.generate_text(model_sql, table, tokens, temperature, top_p,
                                                     only_ids=True, function=function),
                                   {"ids": failing})
        items = []
        stop = tuple(s for s in (getattr(decoding, "stop", ()) or ()) if s)
        for ex in examples:
            text, status = results.get(ex.id, ("", f"missing from the {function.upper()}.GENERATE_TEXT output"))
            text = cut_at_stop(text, stop)
            chars = prompt.cut_input(ex.text)[1]  # the one cut: the host's budget, applied in SQL or upload
            items.append(Prediction(id=ex.id, raw_text="" if status else text, status=status,
                                    prompt=sent.get(ex.id, ""), truncation={"chars": chars} if chars else None))
        failed = sum(1 for p in items if p.status)
        metrics = self.runner.stats.since(start)
        metrics.update({"bqml/rows_succeeded": float(len(items) - failed), "bqml/rows_failed": float(failed),
                        "bqml/row_retry_rounds": float(rounds), "bqml/rows_retried": float(retried),
                        "time/predict_s": round(time.monotonic() - t0, 3)})
        return Predictions(model=model, items=tuple(items), metrics=metrics)

    # -- train -----------------------------------------------------------------------------------
    def train(self, job: TrainJob) -> TrainedModel:
        """Submit (or re-attach to) the tuning job, poll it to the end, return the tuned model.

        ``train.method=none`` tunes nothing and returns the base model (as local_peft does)."""
        method = getattr(getattr(self.run_cfg, "train", None), "method", None)
        if getattr(method, "value", method) == "none":
            return TrainedModel(model=self.base_model())
        from google.api_core import exceptions

        start = self.runner.stats.snapshot()
        table = self._table_for(job.train, job.prompt)
        steps, epochs, note = tuning.iterations(self.cfg, getattr(self.run_cfg, "train", None), len(job.train))
        plan = self.plan
        for line in (*plan.notes, *([note] if note else [])):
            print(f"bqml: {line}", file=self.out)
        options = sql.TuneOptions(
            endpoint=self.endpoint, max_iterations=steps,
            learning_rate_multiplier=plan.learning_rate_multiplier, data_split_method=plan.data_split_method,
            data_split_eval_fraction=plan.data_split_eval_fraction, evaluation_task=plan.evaluation_task)
        spec_sha = _sha([self.cfg.project, self.cfg.dataset, self.cfg.location, self.cfg.connection, table,
                         options.__dict__], 16)
        resume = getattr(self.run_cfg, "resume", None)
        record = jobs.read_job_file(job.out_dir, getattr(self.ctx, "run_dir", None), resume and Path(resume))
        if record and record.get("spec_sha") != spec_sha:
            raise RuntimeError(f"{jobs.JOB_FILE} in this run folder belongs to another tuning spec "
                               f"(job {record.get('job_id')}); use a fresh run folder or restore the config")
        if not record:
            key = _sha([str(Path(job.out_dir).resolve()), spec_sha], 12)
            record = {"job_id": f"ftlab_{key}_tune", "attempt": 1, "location": self.cfg.location,
                      "project": self.cfg.project, "spec_sha": spec_sha,
                      "model": f"{self.cfg.project}.{self.cfg.dataset}.{self.cfg.name_prefix}_tuned_{key}"}
        statement = sql.create_tuned_model(self._model_ref(ModelRef("bqml", "tuned", record["model"])),
                                           self.cfg.connection, table, options)
        def tuned() -> ModelRef:
            return ModelRef(backend="bqml", kind="tuned", uri=record["model"],
                            extra={"job_id": record["job_id"], "location": record["location"],
                                   "endpoint": self.endpoint})
        if self.cfg.dry_run:
            self._send("create_tuned_model", statement)
            return TrainedModel(model=tuned(), metrics={})
        bq_job, attached = None, False
        if record.get("submitted"):
            try:
                bq_job, attached = jobs.attach(self.runner, record["job_id"], record["location"]), True
            except exceptions.NotFound:
                bq_job = None
            if bq_job is not None and bq_job.state == "DONE" and bq_job.error_result:
                record["attempt"] += 1
                record["job_id"] = re.sub(r"_tune(_\d+)?$", f"_tune_{record['attempt']}", record["job_id"])
                bq_job, attached = None, False
        record.update(submitted=True, sql=statement)
        jobs.write_job_file(job.out_dir, record)
        self.ctx.set_tags({"bqml.tune_job_id": record["job_id"], "bqml.location": record["location"],
                           "bqml.tuned_model": record["model"]})
        if bq_job is None:
            bq_job, attached = jobs.submit_or_attach(self.runner, statement, record["job_id"],
                                                     self.cfg.job_timeout_ms)
        print(f"bqml: {'re-attached to' if attached else 'submitted'} tuning job {record['job_id']} "
              f"({record['location']}) → {record['model']}", file=self.out)
        t0 = time.monotonic()
        bq_job = jobs.poll(self.runner, bq_job)
        if bq_job.error_result:
            raise RuntimeError(f"BigQuery ML tuning job {record['job_id']} failed: "
                               f"{bq_job.error_result.get('message', bq_job.error_result)}; "
                               "run again with the same run folder to submit a new attempt")
        wall = time.monotonic() - t0
        tune_s = ((bq_job.ended - bq_job.started).total_seconds()
                  if bq_job.started and bq_job.ended else wall)
        self.runner.stats.add("create_tuned_model", bq_job, 0.0)
        self.runner.stats.statements.append(("create_tuned_model", statement, record["job_id"]))
        metrics = self.runner.stats.since(start)
        metrics.update({"time/tune_s": round(tune_s, 3), "bqml/tune_reattached": float(attached),
                        "bqml/max_iterations": float(options.max_iterations), "bqml/tuning_epochs": float(epochs),
                        "bqml/learning_rate_multiplier": options.learning_rate_multiplier,
                        "bqml/tune_attempt": float(record["attempt"])})
        return TrainedModel(model=tuned(), metrics=metrics, artifacts=(str(Path(job.out_dir) / jobs.JOB_FILE),))

    # -- native evaluation -----------------------------------------------------------------------
    def native_evaluate(self, model: ModelRef, examples: Sequence[Example], prompt: Any) -> "NativeEvaluation":
        """Run ``ML.EVALUATE`` and return its flattened metrics (a dict) with the raw rows on ``.rows``.

        Keys are relative; the host logs them as ``native/<stage>/<split>/<key>``: ``macro_f1``,
        ``per_class/<slug>/{precision,recall,f1}``, ``num_successful_rows``, ``num_total_rows`` and,
        for a generation task, BigQuery's columns by name (``bleu4_score``, ``rouge-l_precision``,
        ``rouge-l_recall``, ``rouge-l_f1_score``, ``exact_match``: :mod:`ftlab_bqml.native`); the task
        type is ``eval.task``'s BigQuery name. The rows are also written to
        ``<run_dir>/native/<model kind>_<split>.json`` and logged as an artifact.
        """
        if not self.cfg.native_eval:
            return NativeEvaluation()
        self._ensure_model(model)
        table = self._table_for(examples, prompt)
        tokens, temperature, top_p = self._gen_params(None)
        rows = self._send("evaluate", sql.evaluate(self._model_ref(model), table, model.kind == "tuned",
                                                   self.plan.task_type, tokens, temperature, top_p))
        result = NativeEvaluation(flatten_evaluation(rows))
        result.rows = rows
        run_dir = getattr(self.ctx, "run_dir", None)
        if rows and run_dir:
            path = Path(run_dir) / "native" / f"{model.kind}_{_split_of(examples)}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rows, indent=1, default=str))
            self.ctx.log_artifact(path, "native")
        return result


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any ``stop`` string (all of it when none occurs)."""
    found = [i for i in (text.find(x) for x in stop) if i >= 0]
    return text[:min(found)] if found else text
