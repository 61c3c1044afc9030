"""``ftlab predict RUN --input FILE.jsonl --output FILE.jsonl [--model base|tuned]``.

Applies a recorded run's model to new rows with the run's own config: its backend, prompt,
decoding and label set. ``RUN`` is an MLflow run id, a run folder, or an experiment name (its
newest run). The tuned model's reference comes from the run folder's ``state.json``, else from
the MLflow run (its ``ftlab.trained_model`` tag); when its folder is gone (the run folder was
deleted, or this is another machine) the ``model/`` artifact is downloaded. The default model is
the tuned one when the run trained, else the base one. Each input line is a JSON object with the
run's ``data.text_column`` (e.g. ``input_text``); every bad line is reported as ``FILE:LINE`` and
then nothing is written. Rows are predicted in chunks; each finished chunk is kept in
``OUT.partial/`` (see :mod:`ftlab.predict_store`), so a killed prediction continues where it
stopped when the same command runs again. Output (written at the end, atomically): one JSON line
per input row with ``id`` (the row's ``id``, else its 1-based line number), ``line``, ``label``,
``raw_text``, ``unparseable``, ``scores``, ``status`` and the fields a run's ``predictions.jsonl``
row has (``prompt_sha256`` and ``truncation``: what the model was sent, :class:`ftlab.contract.Prediction`),
plus ``truth`` when the row carries the run's ``data.label_column``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

MAX_ERRORS_SHOWN = 20


class PredictError(RuntimeError):
    pass


def read_rows(path: Path, text_column: str) -> list[tuple[int, dict]]:
    """``(line, row)`` for every non-blank line; raises PredictError listing every bad line."""
    if not path.is_file():
        raise PredictError(f"input file not found: {path}")
    rows, errors = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{path}:{n}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            errors.append(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
        elif text_column not in row:
            errors.append(f"{path}:{n}: missing key {text_column!r} (the run's data.text_column); "
                          f"the row has {sorted(row)[:8]}")
        elif not isinstance(row[text_column], str) or not row[text_column].strip():
            errors.append(f"{path}:{n}: empty or non-text {text_column!r}")
        else:
            rows.append((n, row))
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = len(errors) - len(shown)
        raise PredictError(f"{len(errors)} invalid input row(s); nothing was written:\n  "
                           + "\n  ".join(shown) + (f"\n  ... and {more} more" if more else ""))
    if not rows:
        raise PredictError(f"{path} has no rows")
    return rows


def load_config(yaml_text: str, plugins) -> Any:
    """The run's recorded config, typed and validated (backend schema from its plugin)."""
    from ftlab.config.compose import ConfigError, plain_config, validate

    plain = plain_config(yaml_text, resolve=False)
    name = (plain.get("backend") or {}).get("name")
    if not name:
        raise ConfigError("the recorded config has no backend.name")
    return validate(plain, plugins)


def _trained_ref(run) -> Optional[dict]:
    """The tuned model's reference: the run folder's ``state.json``, else what MLflow kept (the
    ``ftlab.trained_model`` tag, then the ``state.json`` artifact)."""
    trained = run.state().get("trained")
    if trained is None and run.tags.get("ftlab.trained_model"):
        trained = json.loads(run.tags["ftlab.trained_model"])
    if trained is None and run.run_dir is None:
        trained = (run.json("state.json") or {}).get("trained")
    return trained


def _local_model(run, ref):
    """``ref`` with a local model folder that is gone replaced by the run's ``model/`` artifact."""
    from ftlab.contract import ModelRef

    from ftlab.contain import OutsideFolder, inside, is_local_path

    if not ref.uri or not is_local_path(ref.uri):
        return ref
    if run.run_dir is not None:  # state.json or the tag may only name a model inside the run's folder
        try:
            if inside(run.run_dir, ref.uri, f"the tuned model of run {run.run_id}").exists():
                return ref
        except OutsideFolder as exc:
            raise PredictError(str(exc)) from None
    name = Path(ref.uri).name  # the folder is gone: never a path from elsewhere, the run's artifact
    got = run.download(f"model/{name}")
    if got is not None:
        return ModelRef(backend=ref.backend, kind=ref.kind, uri=str(got), extra=dict(ref.extra))
    if "/" in ref.uri or "\\" in ref.uri:  # a local path (a BigQuery model id has neither)
        raise PredictError(f"the tuned model {ref.uri} is not on this machine and run {run.run_id} has "
                           f"no 'model/{name}' artifact to download (was it run with "
                           f"tracking.log_adapter=false?)")
    return ref


def choose_model(run, backend, which: Optional[str]):
    """The ModelRef to predict with: ``tuned`` as recorded (its folder downloaded from the run's
    artifacts when the run folder is gone), ``base`` from the backend."""
    from ftlab.contract import ModelRef

    trained_ref = _trained_ref(run)
    trained = trained_ref is not None or "time/train_wall_s" in run.metrics
    which = which or ("tuned" if trained else "base")
    if which == "base":
        return backend.base_model()
    if trained_ref is None:
        if not trained:
            raise PredictError(f"run {run.run_id} did not train: use --model base")
        where = run.tags.get("ftlab.run_dir", "?")
        raise PredictError(f"run {run.run_id} trained but recorded no tuned-model reference: no "
                           f"state.json in its run folder {where} or its artifacts, and no "
                           f"ftlab.trained_model tag")
    return _local_model(run, ModelRef.from_json(trained_ref))


def _bar(console, show: bool):
    """One progress bar over all rows, with rows done / total, elapsed time and the ETA."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("rows"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console or Console(stderr=True),
                    disable=not show, transient=True)


def predict_rows(cfg, backend, model, prompt, rows, show_progress: bool = True,
                 store=None, console=None) -> list[dict]:
    """Predict ``rows`` chunk by chunk (``eval.decoding.batch_size`` x 4 rows); with a ``store``
    (:class:`ftlab.predict_store.PartialOutput`), chunks it holds are reused, never recomputed,
    and each new chunk is kept there as soon as it is done."""
    from dataclasses import replace

    from ftlab.config.compose import check_capabilities, decoding_for
    from ftlab.contract import UNPARSEABLE, Example
    from ftlab.faults import kill_point
    from ftlab.plugins import get_plugins

    decoding = decoding_for(cfg, check_capabilities(cfg, get_plugins()))  # as the run did
    text_col, label_col = cfg.data.text_column, cfg.data.label_column
    examples = [Example(id=f"predict-{n}", text=row[text_col], label=str(row.get(label_col, "")),
                        source=f"line {n}") for n, row in rows]
    chunk = chunk_rows(cfg)
    done = store.load() if store is not None else {}
    kept, saved = sum(len(v) for v in done.values()), len(done)
    if store is not None and store.stale:
        print(f"ftlab predict: {store.folder} was kept for another run, model or input: starting over",
              file=sys.stderr)
    if kept:
        print(f"ftlab predict: continuing: {kept} of {len(rows)} rows were kept in {store.folder}",
              file=sys.stderr)
    out: list[dict] = []
    with _bar(console, show_progress) as bar:
        task = bar.add_task(f"predict ({model.kind} model)", total=len(examples), completed=kept)
        for c, i in enumerate(range(0, len(examples), chunk)):
            if c in done:
                out.extend(done[c])
                continue
            part = examples[i:i + chunk]
            preds = {p.id: p for p in backend.predict(model, part, prompt, decoding).items}
            records = []
            for ex, (n, row) in zip(part, rows[i:i + chunk]):
                p = preds.get(ex.id)
                if p is None:
                    raise PredictError(f"the backend returned no prediction for line {n}")
                label = prompt.parse(p.raw_text)
                rec = {**replace(p, label=label).to_json(), "id": row.get("id", n), "line": n,
                       "unparseable": label == UNPARSEABLE}
                if label_col in row:
                    rec["truth"] = row[label_col]
                records.append(rec)
            if store is not None:
                store.save(c, records)
                saved += 1
                kill_point("predict.chunk", saved)
            out.extend(records)
            bar.advance(task, len(part))
    return out


def chunk_rows(cfg) -> int:
    """Rows per backend call, and per file kept in ``OUT.partial/``."""
    return max(1, cfg.eval.decoding.batch_size) * 4


def write_jsonl(path: Path, records: list[dict]) -> None:
    """Write atomically: a partial output file never appears."""
    from ftlab.paths import atomic_open

    with atomic_open(path) as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def predict(ref: str, input_path: Path, output_path: Path, which: Optional[str] = None,
            uri: Optional[str] = None, show_progress: bool = True) -> list[dict]:
    """Predict every row of ``input_path`` into ``output_path``; continues from ``OUT.partial/``."""
    import hashlib

    from ftlab.contract import RunContext
    from ftlab.plugins import get_plugins
    from ftlab.predict_store import PartialOutput, file_sha256
    from ftlab.prompt import make_prompt
    from ftlab.runs import find_run

    run = find_run(ref, uri)
    try:
        yaml_text = run.text("config.yaml")
        if yaml_text is None:
            raise PredictError(f"run {run.run_id} has no recorded config.yaml")
        plugins = get_plugins()
        cfg = load_config(yaml_text, plugins)
        if hasattr(cfg.backend, "progress"):
            cfg.backend.progress = False  # one overall bar here, not the backend's bar per chunk
        rows = read_rows(input_path, cfg.data.text_column)  # before any model loads
        prompt = make_prompt(cfg.prompt, cfg.data.labels)
        with tempfile.TemporaryDirectory(prefix="ftlab-predict-") as work:
            backend = plugins.backend(cfg.backend.name).factory(cfg, RunContext(Path(work)))
            model = choose_model(run, backend, which)
            key = {"run": run.run_id, "model": model.kind, "input": file_sha256(input_path),
                   "config": hashlib.sha256(yaml_text.encode()).hexdigest()}
            store = PartialOutput(Path(output_path), key, len(rows), chunk_rows(cfg))
            try:
                records = predict_rows(cfg, backend, model, prompt, rows, show_progress, store)
            except KeyboardInterrupt:
                print(f"ftlab predict: interrupted; finished chunks are kept in {store.folder}: run "
                      f"the same command again to continue", file=sys.stderr)
                raise
        write_jsonl(output_path, records)
        store.remove()
        return records
    finally:
        run.cleanup()


def main(args: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="ftlab predict", description=__doc__.splitlines()[0])
    p.add_argument("run", metavar="RUN_ID",
                   help="MLflow run id, run folder, or experiment name (newest run)")
    p.add_argument("--input", "-i", type=Path, required=True, help="JSONL rows to classify")
    p.add_argument("--output", "-o", type=Path, required=True, help="JSONL predictions to write")
    p.add_argument("--model", choices=("base", "tuned"), default=None,
                   help="default: tuned if the run trained, else base")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: as `ftlab` runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    ns = p.parse_args(list(args))
    from ftlab.config.compose import ConfigError
    from ftlab.plugins import PluginError
    from ftlab.runs import RunNotFound

    try:
        records = predict(ns.run, ns.input, ns.output, ns.model, ns.tracking_uri,
                          show_progress=not ns.no_progress and sys.stderr.isatty())
    except (PredictError, RunNotFound, ConfigError, PluginError) as exc:
        print(f"ftlab predict: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    bad = sum(r["unparseable"] for r in records)
    print(f"{len(records)} predictions written to {ns.output} ({bad} unparseable)")
    return 0
