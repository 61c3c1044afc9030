"""Score one prediction set: parse answers, compute strict and lenient reports, write the files.

Metric keys (``<p>`` = ``eval/<stage>/<split>``, ``<slug>`` = label slug):
  ``<p>/<metric>`` and ``<p>/per_class/<slug>/{precision,recall,f1}``  strict (the headline)
  ``<p>/strict/...``                                                    the same numbers, explicit
  ``<p>/lenient/...``                                                   lenient (only when the data
                                                                        has acceptable labels)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ftlab.contract import UNPARSEABLE, Example, Prediction, Predictions, prompt_rows
from ftlab.metrics.classification import Report, classification_report, lenient_truth
from ftlab.paths import atomic_open, atomic_write_text
from ftlab.prompt import Prompt


def slug(label: str) -> str:
    """``Allergy / Immunology`` → ``allergy_immunology`` (safe inside a metric key)."""
    return re.sub(r"[^a-z0-9]+", "_", label.casefold()).strip("_") or "label"


def slug_map(labels: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for lab in labels:
        s, n = slug(lab), 2
        while s in out:
            s, n = f"{slug(lab)}_{n}", n + 1
        out[s] = lab
    return out


@dataclass(frozen=True)
class Scored:
    stage: str
    split: str
    items: tuple[Prediction, ...]
    """Predictions with ``label`` filled by the host parser."""
    y_true: tuple[str, ...]
    y_pred: tuple[str, ...]
    strict: Report
    lenient: Optional[Report]
    failed: int
    """Rows the backend could not answer (non-empty status)."""


def score(stage: str, split: str, examples: Sequence[Example], preds: Predictions,
          prompt: Prompt, lenient: bool) -> Scored:
    by_id = {p.id: p for p in preds.items}
    missing = [ex.id for ex in examples if ex.id not in by_id]
    if missing or len(preds.items) != len(examples):
        raise RuntimeError(f"backend returned {len(preds.items)} predictions for {len(examples)} "
                           f"examples (missing ids: {missing[:5]}); every row must be answered")
    items = tuple(dataclasses.replace(by_id[ex.id], label=prompt.parse(by_id[ex.id].raw_text))
                  for ex in examples)
    y_true = tuple(ex.label for ex in examples)
    y_pred = tuple(p.label for p in items)
    labels = prompt.labels
    strict = classification_report(y_true, y_pred, labels)
    len_report = None
    if lenient and any(ex.acceptable for ex in examples):
        truth = lenient_truth(y_true, y_pred, [ex.acceptable for ex in examples])
        len_report = classification_report(truth, y_pred, labels)
    return Scored(stage, split, items, y_true, y_pred, strict, len_report,
                  sum(1 for p in items if p.status))


def metric_dict(s: Scored, labels: Sequence[str]) -> dict[str, float]:
    prefix = f"eval/{s.stage}/{s.split}"
    slugs = {v: k for k, v in slug_map(labels).items()}
    out: dict[str, float] = {f"{prefix}/failed_rows": float(s.failed)}

    def add(p: str, rep: Report) -> None:
        for k, v in rep.headline().items():
            out[f"{p}/{k}"] = v
        for lab, m in rep.per_class.items():
            for k in ("precision", "recall", "f1"):
                out[f"{p}/per_class/{slugs[lab]}/{k}"] = getattr(m, k)

    add(prefix, s.strict)
    add(f"{prefix}/strict", s.strict)
    if s.lenient is not None:
        add(f"{prefix}/lenient", s.lenient)
    return out


def write_prompts(out: Path, items) -> list[Path]:
    """prompts.jsonl under ``out`` (one row per item that recorded its prompt); [] when none did."""
    prompts = prompt_rows(items)
    if not prompts:
        return []
    path = out / "prompts.jsonl"
    with atomic_open(path) as fh:
        for r in prompts:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return [path]


def write_files(s: Scored, examples: Sequence[Example], labels: Sequence[str], out: Path) -> list[Path]:
    """predictions.jsonl, prompts.jsonl (the distinct texts sent, by sha256), per_class.csv,
    confusion_matrix.csv/.png, metrics.json under ``out``."""
    from ftlab import plots

    out.mkdir(parents=True, exist_ok=True)
    files = []
    path = out / "predictions.jsonl"
    with atomic_open(path) as fh:
        for ex, p in zip(examples, s.items):
            row = {"id": ex.id, "source": ex.source, "truth": ex.label,
                   "acceptable": list(ex.acceptable), **p.to_json(), "correct": p.label == ex.label,
                   "correct_lenient": p.label in (ex.acceptable or (ex.label,)),
                   "unparseable": p.label == UNPARSEABLE}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    files.append(path)
    files += write_prompts(out, s.items)
    path = out / "per_class.csv"
    slugs = {v: k for k, v in slug_map(labels).items()}
    with atomic_open(path, newline="") as fh:
        w = csv.writer(fh)
        head = ["label", "slug", "support", "predicted", "precision", "recall", "f1"]
        w.writerow(head + (["lenient_precision", "lenient_recall", "lenient_f1"] if s.lenient else []))
        for lab in labels:
            m = s.strict.per_class[lab]
            row = [lab, slugs[lab], m.support, m.predicted, f"{m.precision:.6f}", f"{m.recall:.6f}",
                   f"{m.f1:.6f}"]
            if s.lenient:
                lm = s.lenient.per_class[lab]
                row += [f"{lm.precision:.6f}", f"{lm.recall:.6f}", f"{lm.f1:.6f}"]
            w.writerow(row)
    files.append(path)
    path = out / "confusion_matrix.csv"
    with atomic_open(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["true \\ predicted", *labels, UNPARSEABLE])
        for lab, row in zip(labels, s.strict.confusion):
            w.writerow([lab, *map(int, row)])
    files.append(path)
    files.append(plots.confusion_matrix_png(s.strict.confusion, labels, out / "confusion_matrix.png",
                                            f"{s.stage} model, {s.split} split (strict)"))
    path = out / "metrics.json"
    atomic_write_text(path, json.dumps(metric_dict(s, labels), indent=1, sort_keys=True))
    files.append(path)
    return files
