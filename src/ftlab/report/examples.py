"""The report's view of a generation task ("look, not only read"): the task's headline metrics, the
paired comparison of each, and the examples themselves, read from ``compare/<split>/examples.json``
(the table the run logged to MLflow): a sample side by side (input excerpt, reference, base output,
tuned output, per-example score), the largest gains and losses, and the histogram of per-example
deltas. No rendering here, and no model library imports.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ftlab.runs import RecordedRun
from ftlab.tasks import CLASSIFICATION

if TYPE_CHECKING:
    from ftlab.report.collect import Chart

SAMPLE_ROWS = 8
"""Examples shown side by side (a seeded sample, in data order)."""
EXTREMES = 5
"""Largest gains and largest losses shown each."""
SAMPLE_SEED = 0
EXCERPT_CHARS = 300
"""The report cuts each input to this many characters (the table artifact keeps more)."""
OUTPUT_FACTS = ("empty_rate", "mean_output_words")


@dataclass
class ExampleRow:
    id: str
    input: str
    reference: str
    base: str
    tuned: str
    base_score: Optional[float]
    tuned_score: Optional[float]
    delta: Optional[float]


@dataclass
class KeyComparison:
    """The paired comparison of one headline metric (``compare/<split>/<key>_*``)."""

    key: str
    delta: Optional[float]
    ci_low: Optional[float]
    ci_high: Optional[float]
    wins: Optional[int]
    ties: Optional[int]
    losses: Optional[int]


@dataclass
class GenerationView:
    task: str
    key: str
    """The per-example score of the examples table (the task's first headline metric)."""
    n: int
    comparisons: list[KeyComparison]
    sample: list[ExampleRow] = field(default_factory=list)
    gains: list[ExampleRow] = field(default_factory=list)
    losses: list[ExampleRow] = field(default_factory=list)
    histogram: Optional["Chart"] = None
    """The histogram of the per-example deltas, when recorded."""


def generation_keys(run: RecordedRun, split: str) -> Optional[list[str]]:
    """The headline metric keys of a generation run (None for classification): the registered task's,
    else every corpus metric the run logged; then the output facts (empty rate, mean output words)."""
    task = run.params.get("eval.task", CLASSIFICATION)
    if task == CLASSIFICATION:
        return None
    logged = {k.split("/")[3] for k in run.metrics
              if k.startswith("eval/") and k.count("/") == 3 and k.split("/")[2] == split}
    try:
        from ftlab.plugins import get_plugins

        keys = [k for k in get_plugins().task(task).headline if k in logged]
    except Exception:  # the task's plugin is not installed here: show what the run logged
        keys = sorted(logged - {"failed_rows", *OUTPUT_FACTS})
    return keys + [k for k in OUTPUT_FACTS if k in logged]


def _num(v) -> Optional[float]:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _rows(table: dict) -> tuple[str, list[ExampleRow]]:
    cols = list(table.get("columns") or [])
    key = next((c[len("base_"):] for c in cols if c.startswith("base_") and c != "base_output"), "")
    at = {c: i for i, c in enumerate(cols)}
    rows = []
    for r in table.get("data") or []:
        def get(c: str, _r=r):
            return _r[at[c]] if c in at and at[c] < len(_r) else None
        text = str(get("input") or "")
        rows.append(ExampleRow(str(get("id")), text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 1] + "…",
                               str(get("reference") or ""), str(get("base_output") or ""),
                               str(get("tuned_output") or ""), _num(get(f"base_{key}")),
                               _num(get(f"tuned_{key}")), _num(get("delta"))))
    return key, rows


def generation_view(run: RecordedRun, split: str, keys: list[str], chart) -> GenerationView:
    """The comparison rows of ``keys`` and the examples of ``split``; ``chart(rel, title)`` reads a PNG."""
    m = run.metrics
    p = f"compare/{split}"

    def count(k: str) -> Optional[int]:
        v = m.get(f"{p}/{k}")
        return None if v is None else int(v)

    comps = [KeyComparison(k, m.get(f"{p}/{k}_delta"), m.get(f"{p}/{k}_delta_ci_low"), m.get(f"{p}/{k}_delta_ci_high"),
                           count(f"{k}_wins"), count(f"{k}_ties"), count(f"{k}_losses"))
             for k in keys if f"{p}/{k}_delta" in m]
    table = run.json(f"{p}/examples.json")
    key, rows = _rows(table) if isinstance(table, dict) else (keys[0] if keys else "", [])
    view = GenerationView(run.params.get("eval.task", ""), key, len(rows), comps)
    if rows:
        picked = sorted(random.Random(SAMPLE_SEED).sample(range(len(rows)), min(SAMPLE_ROWS, len(rows))))
        view.sample = [rows[i] for i in picked]
        scored = [r for r in rows if r.delta is not None]
        view.gains = sorted((r for r in scored if r.delta > 0), key=lambda r: -r.delta)[:EXTREMES]
        view.losses = sorted((r for r in scored if r.delta < 0), key=lambda r: r.delta)[:EXTREMES]
    view.histogram = chart(f"{p}/per_example_delta.png",
                           f"Per-example {key} on {split}: tuned minus base ({len(rows)} examples)")
    return view
