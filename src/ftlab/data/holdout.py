"""``data.eval_fraction``: hold out part of a single-split data set as its ``eval`` split.

Stratified by label: each label's rows are shuffled with ``random.Random(data.split_seed)`` (labels
taken in the label set's order, so the draw is reproducible) and ``round(n * fraction)`` of them are
held out, at least one and never all, so every label with two or more rows is in both parts; a label
with a single row stays in ``train`` (a warning names it). Each part keeps the file's row order, and
every example keeps its id (``train-<row>``, or the ``data.id_column`` value), which names the file's row.
"""

from __future__ import annotations

import dataclasses
import logging
import random

log = logging.getLogger("ftlab")


def hold_out(train, labels, fraction: float, seed: int, source: tuple) -> tuple:
    """``(train part, eval part, record)`` of the training :class:`~ftlab.data.load.Split`."""
    by_label: dict[str, list[int]] = {}
    for i, ex in enumerate(train.examples):
        by_label.setdefault(ex.label, []).append(i)
    rng = random.Random(seed)
    held: set[int] = set()
    per_label: dict[str, dict[str, int]] = {}
    alone = []
    for label in labels:
        rows = by_label.get(label, [])
        k = min(max(round(len(rows) * fraction), 1), len(rows) - 1) if len(rows) >= 2 else 0
        if len(rows) == 1:
            alone.append(label)
        order = rows[:]
        rng.shuffle(order)
        held.update(order[:k])
        per_label[label] = {"train": len(rows) - k, "eval": k}
    if not held:
        from ftlab.data.rows import DataError

        raise DataError(f"data.eval_fraction={fraction}: {source[0]} has no label with two or more rows, "
                        f"so nothing can be held out for evaluation")
    if alone:
        log.warning("data.eval_fraction: %d label(s) have a single row, kept in train and absent from "
                    "eval: %s", len(alone), ", ".join(alone))
    keep = tuple(ex for i, ex in enumerate(train.examples) if i not in held)
    out = tuple(ex for i, ex in enumerate(train.examples) if i in held)
    record = {"source": f"{source[0]}={source[1]}", "file": str(train.path), "sha256": train.sha256,
              "fraction": fraction, "seed": seed, "stratified_by": "label",
              "rows": {"train": len(keep), "eval": len(out)}, "per_label": per_label}
    return (dataclasses.replace(train, examples=keep),
            dataclasses.replace(train, name="eval", examples=out, skipped=()), record)
