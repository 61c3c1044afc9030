"""Turn a recorded run into plain rows for the report: headline metrics, paired statistics, per-class
table, charts, the differences from the defaults, provenance and the full configuration. No rendering
here, and no model library imports.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

from ftlab.contract import Capabilities
from ftlab.report.examples import OUTPUT_FACTS, GenerationView, generation_keys, generation_view
from ftlab.runs import RecordedRun
from ftlab.tracking.redact import redact_uri

HEADLINE = (("macro-F1", "macro_f1"), ("micro-F1", "micro_f1"), ("accuracy", "accuracy"),
            ("unparseable rate", "unparseable_rate"))
SHOWN_CHARS = 160
"""A value in the differences table is cut to this many characters (the full configuration has it all)."""


@dataclass
class Chart:
    title: str
    png: bytes
    name: str
    """File name to use when the chart is written next to the Markdown file."""


@dataclass
class MetricRow:
    name: str
    mode: str
    """``strict`` or ``lenient`` (classification), ``corpus`` (a generation task's metric over the split)."""
    values: dict[str, Optional[float]]
    """stage → value."""
    delta: Optional[float] = None


@dataclass
class ClassRow:
    label: str
    support: Optional[int]
    base: Optional[float]
    tuned: Optional[float]

    @property
    def delta(self) -> Optional[float]:
        return None if self.base is None or self.tuned is None else self.tuned - self.base


@dataclass
class SplitView:
    split: str
    stages: list[str]
    headline: list[MetricRow]
    per_class: list[ClassRow]
    compare: Optional[dict[str, float]]
    charts: list[Chart] = field(default_factory=list)
    generation: Optional[GenerationView] = None
    """A generation task's comparison and examples (None: classification, or no paired comparison)."""


@dataclass
class Change:
    key: str
    value: str
    default: Optional[str]
    """The default's value; None when the defaults have no such key (another backend's schema)."""


@dataclass
class RunView:
    run: RecordedRun
    started: str
    config: list[tuple[str, str]]
    """The full configuration (shown last, collapsed): every logged param, except ``train.*`` keys the
    run's backend declares it does not use (capabilities, tagged ``ftlab.train_keys``)."""
    changes: Optional[list[Change]]
    """The keys of ``config`` whose value differs from the defaults (None: the defaults could not be
    composed here; ``defaults_note`` says why)."""
    defaults_note: str
    splits: list[SplitView]
    charts: list[Chart]
    """Run-wide charts (training loss)."""
    provenance: list[tuple[str, str]]
    native: list[tuple[str, float]]
    notes: list[str]

    primary: str = "macro_f1"
    """The key the runs-side-by-side table shows: macro-F1, or a generation task's first headline metric."""

    def headline(self, stage: str, mode: str = "strict", key: Optional[str] = None) -> Optional[float]:
        split = self.splits[0].split if self.splits else "eval"
        if mode == "lenient" and self.primary != "macro_f1":
            return None  # a generation task has no lenient scoring
        return _metric(self.run, stage, split, mode, key or self.primary)


def _metric(run: RecordedRun, stage: str, split: str, mode: str, key: str) -> Optional[float]:
    p = f"eval/{stage}/{split}"
    v = run.metric(f"{p}/{mode}/{key}")
    if v is None and mode == "strict":
        v = run.metric(f"{p}/{key}")
    return v


def _chart(run: RecordedRun, rel: str, title: str) -> Optional[Chart]:
    path = run.file(rel)
    if path is None:
        return None
    return Chart(title, path.read_bytes(), rel.replace("/", "_"))


def _labels(run: RecordedRun) -> list[tuple[str, str]]:
    """(slug, label) in display order: labels.json, else the metric keys."""
    slugs = run.json("labels.json")
    if isinstance(slugs, dict) and slugs:
        return list(slugs.items())
    found = []
    for k in run.metrics:
        parts = k.split("/")
        if len(parts) == 6 and parts[3] == "per_class" and parts[5] == "f1" and parts[4] not in found:
            found.append(parts[4])
    return [(s, s) for s in sorted(found)]


def _support(run: RecordedRun, split: str, stages: list[str]) -> dict[str, int]:
    for stage in stages:
        raw = run.text(f"eval/{stage}/{split}/per_class.csv")
        if raw:
            return {r["slug"]: int(r["support"]) for r in csv.DictReader(io.StringIO(raw))
                    if r.get("slug") and r.get("support", "").isdigit()}
    return {}


def _generation_split(run: RecordedRun, split: str, stages: list[str], keys: list[str]) -> SplitView:
    rows = []
    for key in keys:
        vals = {s: run.metric(f"eval/{s}/{split}/{key}") for s in stages}
        if any(v is not None for v in vals.values()):
            b, t = vals.get("base"), vals.get("tuned")
            rows.append(MetricRow(key, "output" if key in OUTPUT_FACTS else "corpus", vals,
                                  None if b is None or t is None else t - b))
    gen = compare = None
    if "base" in stages and "tuned" in stages:
        gen = generation_view(run, split, keys, lambda rel, title: _chart(run, rel, title))
        names = [f"{keys[0]}{x}" for x in ("_delta", "_delta_ci_low", "_delta_ci_high")] if keys else []
        compare = {n: run.metrics[f"compare/{split}/{n}"] for n in names if f"compare/{split}/{n}" in run.metrics} or None
    return SplitView(split, stages, rows, [], compare, [], gen)


def _split_view(run: RecordedRun, split: str) -> SplitView:
    stages = run.stages(split)
    keys = generation_keys(run, split)
    if keys is not None:
        return _generation_split(run, split, stages, keys)
    rows: list[MetricRow] = []
    for mode in ("strict", "lenient"):
        for name, key in HEADLINE:
            vals = {s: _metric(run, s, split, mode, key) for s in stages}
            if all(v is None for v in vals.values()):
                continue
            b, t = vals.get("base"), vals.get("tuned")
            rows.append(MetricRow(name, mode, vals, None if b is None or t is None else t - b))
    support = _support(run, split, stages)
    per_class = []
    for slug_, label in _labels(run):
        def f1(stage: str) -> Optional[float]:
            return run.metric(f"eval/{stage}/{split}/per_class/{slug_}/f1")
        if "base" not in stages and "tuned" not in stages:
            continue
        per_class.append(ClassRow(label, support.get(slug_), f1("base"), f1("tuned")))
    cmp_keys = ("macro_f1_delta", "macro_f1_delta_ci_low", "macro_f1_delta_ci_high", "mcnemar_p",
                "accuracy_delta", "only_base_correct", "only_tuned_correct",
                "lenient_macro_f1_delta")
    compare = {k: run.metrics[f"compare/{split}/{k}"] for k in cmp_keys
               if f"compare/{split}/{k}" in run.metrics} or None
    charts = []
    for stage in stages:
        c = _chart(run, f"eval/{stage}/{split}/confusion_matrix.png",
                   f"Confusion matrix: {stage} model, {split} split (strict, row-normalised)")
        if c:
            charts.append(c)
    c = _chart(run, f"compare/{split}/per_class_f1.png", f"Per-class F1 on {split}: base vs tuned")
    if c:
        charts.append(c)
    return SplitView(split, stages, rows, per_class, compare, charts)


def _provenance(run: RecordedRun) -> list[tuple[str, str]]:
    rows = [("MLflow run id", run.run_id), ("experiment", run.experiment_name),
            ("tracking URI", redact_uri(run.tracking_uri)), ("status", run.status),
            ("run folder", str(run.run_dir) if run.run_dir else
             f"{run.tags.get('ftlab.run_dir', '')} (not on this machine; read from artifacts)")]
    man = run.json("manifest.json") or {}
    git = man.get("git", {})
    sha = git.get("sha") or run.tags.get("mlflow.source.git.commit", "")
    rows.append(("git sha", sha + (" (dirty working tree)" if git.get("dirty") else "")))
    if man.get("config_sha256"):
        rows.append(("config sha256", man["config_sha256"]))
    for name, d in (man.get("data") or {}).items():
        rows.append((f"data {name}", f"{d.get('path', '')} ({d.get('rows', '?')} rows) "
                                     f"sha256 {d.get('sha256', '')}"))
    if man.get("data_labels"):
        n = len(man["data_labels"].get("labels") or [])
        rows.append(("data labels", f"auto: the training file's {n} distinct labels (counts in manifest.json)"))
    if man.get("data_split"):
        d = man["data_split"]
        rows.append(("data split", f"eval_fraction {d.get('fraction')} of {d.get('source', '')}, stratified, "
                                   f"seed {d.get('seed')} (row ids: data/split.json)"))
    rows.append(("prompt sha256", man.get("prompt_sha256") or run.tags.get("ftlab.prompt_sha256", "")))
    rows.append(("label-set sha256", man.get("label_set_sha256")
                 or run.tags.get("ftlab.label_set_sha256", "")))
    for k, v in (man.get("seeds") or {}).items():
        rows.append((f"seed {k}", str(v)))
    for k, v in (man.get("versions") or {}).items():
        rows.append((f"version {k}", str(v)))
    return rows


def default_params(backend: str, cache: Optional[dict] = None) -> dict[str, str]:
    """The params a run with no experiment and no overrides would log (``ftlab backend=<backend>``:
    the project's defaults, with the run's backend so its own keys compare to their defaults)."""
    if cache is not None and backend in cache:
        return cache[backend]
    from omegaconf import OmegaConf

    from ftlab.config.compose import compose, plain_config
    from ftlab.tracking.mlflow_tracker import flatten

    plain = plain_config(compose([f"backend={backend}"] if backend else []), resolve=True)
    # through YAML, as the runner records it (enums become their names)
    params = flatten(OmegaConf.to_container(OmegaConf.create(OmegaConf.to_yaml(plain))))
    if cache is not None:
        cache[backend] = params
    return params


def _changes(run: RecordedRun, config: list[tuple[str, str]],
             cache: Optional[dict]) -> tuple[Optional[list[Change]], str]:
    backend = run.params.get("backend.name", "")
    try:
        defaults = default_params(backend, cache)
    except Exception as exc:  # composing needs the project's conf/ and the backend's plugin
        return None, (f"The defaults could not be composed here ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); the full configuration is below.")
    changes = [Change(k, v, defaults.get(k)) for k, v in config if defaults.get(k) != v]
    return changes, (f"Compared with `ftlab backend={backend}` (no experiment, no overrides): "
                     f"{len(changes)} of {len(config)} keys differ.")


def collect(run: RecordedRun, defaults_cache: Optional[dict] = None) -> RunView:
    """The report's rows for ``run``; ``defaults_cache`` (backend → default params) is shared by the
    runs of one report, so the defaults are composed once per backend."""
    started = (datetime.fromtimestamp(run.start_time / 1000, tz=timezone.utc)
               .strftime("%Y-%m-%d %H:%M:%S UTC") if run.start_time else "")
    declared = run.tags.get("ftlab.train_keys")
    caps = Capabilities(train_keys=None if declared is None else dict.fromkeys(declared.split(), ""))
    config = [(k, v) for k, v in sorted(run.params.items())
              if not k.startswith("train.") or caps.honours_train_key(k[len("train."):])]
    changes, note = _changes(run, config, defaults_cache)
    charts = [c for c in [_chart(run, "train/loss.png", "Training loss per step")] if c]
    native = sorted((k, v) for k, v in run.metrics.items() if k.startswith("native/"))
    notes = []
    splits = [_split_view(run, s) for s in run.splits()]
    if not splits:
        notes.append("This run recorded no evaluation metrics (did it fail before evaluating?).")
    if run.status != "FINISHED":
        notes.append(f"Run status is {run.status}: numbers may be partial.")
        notes += [run.status_note] if run.status_note else []
    gen_keys = generation_keys(run, splits[0].split) if splits else None
    return RunView(run, started, config, changes, note, splits, charts, _provenance(run), native, notes,
                   gen_keys[0] if gen_keys else "macro_f1")


def comparability(views: list[RunView]) -> list[str]:
    """Warnings for a side-by-side table whose runs did not see the same inputs: another prompt (its
    sha256 covers the template, label list and every truncation setting) or another label set."""
    notes = []
    for key, what in (("ftlab.prompt_sha256", "prompt"), ("ftlab.label_set_sha256", "label set")):
        seen: dict[str, list[str]] = {}
        for v in views:
            seen.setdefault(v.run.tags.get(key, "?")[:12], []).append(v.run.label)
        if len(seen) > 1:
            groups = "; ".join(f"{sha}: {', '.join(runs)}" for sha, runs in seen.items())
            notes.append(f"These runs were not given the same {what} ({groups}), so their numbers are not "
                         f"like for like" + (". To compare backends on the same text, run each with "
                                             "prompt=classify_portable (the host cuts every input alike)"
                                             if what == "prompt" else "") + ".")
    return notes


def fmt(x: Optional[float], signed: bool = False) -> str:
    if x is None:
        return ""
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def fmt_p(x: Optional[float]) -> str:
    return "" if x is None else f"{x:.3g}"


def ci_text(c: Optional[dict], key: str = "macro_f1") -> str:
    """``+0.120 [+0.050, +0.190]`` for ``key`` of a comparison dict (``<key>_delta``, ``_ci_low``,
    ``_ci_high``), else empty."""
    if not c or f"{key}_delta" not in c:
        return ""
    lo, hi = c.get(f"{key}_delta_ci_low"), c.get(f"{key}_delta_ci_high")
    ci = f" [{fmt(lo, True)}, {fmt(hi, True)}]" if lo is not None and hi is not None else ""
    return f"{fmt(c[f'{key}_delta'], True)}{ci}"


def primary_label(views: list[RunView]) -> str:
    """The runs-side-by-side table's metric name: macro-F1, or the generation metric all runs share."""
    keys = {v.primary for v in views}
    if keys == {"macro_f1"}:
        return "macro-F1"
    return keys.pop() if len(keys) == 1 else "headline metric"


def confidence_pct(view: RunView) -> str:
    raw = view.run.params.get("eval.confidence")
    try:
        return f"{float(raw) * 100:g}"
    except (TypeError, ValueError):
        return "95"
