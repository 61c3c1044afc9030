"""Score one prediction set of a generation task: per-example and corpus metrics, and the files.

Metric keys (``<p>`` = ``eval/<stage>/<split>``): ``<p>/<key>`` for each key of each metric the
task uses (``rougeL_f1``, ``bleu``, ``bleu4``, ``exact_match`` …; corpus values), ``<p>/empty_rate``
(answers with no text), ``<p>/mean_output_words``, ``<p>/failed_rows``. ``predictions.jsonl`` keeps
every example's own scores under ``metrics``; ``signatures.json`` says how each metric was computed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ftlab.contract import Example, Prediction, Predictions
from ftlab.evaluate import write_prompts
from ftlab.paths import atomic_open, atomic_write_text


@dataclass(frozen=True)
class TextScored:
    stage: str
    split: str
    items: tuple[Prediction, ...]
    references: tuple[tuple[str, ...], ...]
    per_example: tuple[dict[str, float], ...]
    """Each example's own score per key (sentence-level for corpus metrics)."""
    stats: Mapping[str, np.ndarray]
    """Per key, ``[n, d]`` summable statistics (the corpus value of any subset is their sum's value)."""
    corpus: Mapping[str, float]
    """Per key, the corpus value over every example."""
    metric_of: Mapping[str, Any]
    """Key → its :class:`ftlab.metrics.text.TextMetric`."""
    signatures: Mapping[str, str]
    failed: int
    inputs: tuple[str, ...] = ()
    """Each example's input text (the examples table of the paired comparison shows an excerpt)."""
    generative = True

    def headline(self) -> dict[str, float]:
        """Every corpus value plus the output facts (what CV aggregates and the objective reads)."""
        empty = sum(1 for p in self.items if not p.raw_text.strip())
        words = [len(p.raw_text.split()) for p in self.items]
        return {**self.corpus, "empty_rate": empty / max(len(self.items), 1),
                "mean_output_words": float(np.mean(words)) if words else 0.0}

    def value(self, key: str, idx: Optional[np.ndarray] = None) -> float:
        """The corpus value of ``key`` over the rows ``idx`` (all rows when None)."""
        st = self.stats[key] if idx is None else self.stats[key][idx]
        return float(self.metric_of[key].value(key, list(st.sum(0))))


def score_text(stage: str, split: str, examples: Sequence[Example], preds: Predictions,
               metrics: Sequence[Any]) -> TextScored:
    """Score ``preds`` against each example's references with ``metrics`` (registered TextMetrics)."""
    by_id = {p.id: p for p in preds.items}
    missing = [ex.id for ex in examples if ex.id not in by_id]
    if missing or len(preds.items) != len(examples):
        raise RuntimeError(f"backend returned {len(preds.items)} predictions for {len(examples)} "
                           f"examples (missing ids: {missing[:5]}); every row must be answered")
    items = tuple(by_id[ex.id] for ex in examples)
    refs = tuple(tuple(ex.references) for ex in examples)
    per: list[dict[str, float]] = [{} for _ in examples]
    rows: dict[str, list[list[float]]] = {}
    metric_of: dict[str, Any] = {}
    for m in metrics:
        for i, (p, r) in enumerate(zip(items, refs)):
            for key, st in m.stats(p.raw_text, r).items():
                rows.setdefault(key, []).append(st)
                metric_of[key] = m
            per[i].update(m.example(p.raw_text, r))
    stats = {k: np.asarray(v, dtype=float) for k, v in rows.items()}
    corpus = {k: float(metric_of[k].value(k, list(v.sum(0)))) if len(v) else 0.0 for k, v in stats.items()}
    signatures = {m.name: m.signature() for m in metrics}
    return TextScored(stage, split, items, refs, tuple(per), stats, corpus, metric_of, signatures,
                      sum(1 for p in items if p.status), tuple(ex.text for ex in examples))


def metric_dict(s: TextScored) -> dict[str, float]:
    prefix = f"eval/{s.stage}/{s.split}"
    return {f"{prefix}/failed_rows": float(s.failed), **{f"{prefix}/{k}": v for k, v in s.headline().items()}}


def write_files(s: TextScored, examples: Sequence[Example], out: Path) -> list[Path]:
    """predictions.jsonl (references, answer, per-example scores), prompts.jsonl, metrics.json,
    signatures.json under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "predictions.jsonl"
    with atomic_open(path) as fh:
        for ex, p, per in zip(examples, s.items, s.per_example):
            row = {"id": ex.id, "source": ex.source, "references": list(ex.references), **p.to_json(),
                   "metrics": per}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    files = [path]
    files += write_prompts(out, s.items)
    path = out / "metrics.json"
    atomic_write_text(path, json.dumps(metric_dict(s), indent=1, sort_keys=True))
    files.append(path)
    path = out / "signatures.json"
    atomic_write_text(path, json.dumps(dict(s.signatures), indent=1, sort_keys=True))
    files.append(path)
    return files

