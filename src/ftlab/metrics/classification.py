"""Per-class and averaged classification metrics for LLM answers.

Conventions (checked against scikit-learn in tests):

- ``y_pred`` may hold ``<unparseable>``. It is never a class: such a row is a false negative of
  its true label and a false positive of nothing. It counts against accuracy and recall.
- Per-class rows exist for every configured label (support 0 allowed, 0/0 → 0).
- **macro** averages over the labels that occur in the truth *or* the predictions (a label neither
  true nor predicted has no defined F1 and is skipped). This equals
  ``sklearn.metrics.f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)``.
- **micro** pools TP/FP/FN over the configured labels (so it differs from accuracy only through
  unparseable answers); **weighted** weights each present label by its true support.
- **lenient**: when a row carries several acceptable labels, a prediction inside that set is
  correct; per-class counts then use the predicted label as the row's truth.

This module is the tree's only F1 implementation: :func:`prf_from_counts` is the formula,
:func:`macro_average` the averaging rule; :func:`classification_report` (labels) and
:func:`macro_f1_codes` (integer codes, vectorised for bootstrap loops) both use them, and the
fake BigQuery server and the plugins' test helpers import them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ftlab.contract import UNPARSEABLE


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


@dataclass(frozen=True)
class Report:
    labels: tuple[str, ...]
    per_class: dict[str, ClassMetrics]
    macro_precision: float
    macro_recall: float
    macro_f1: float
    micro_precision: float
    micro_recall: float
    micro_f1: float
    weighted_f1: float
    accuracy: float
    n: int
    unparseable: int
    confusion: np.ndarray = field(repr=False)
    """Rows: true labels (in ``labels`` order); columns: ``labels`` then ``<unparseable>``."""

    @property
    def unparseable_rate(self) -> float:
        return self.unparseable / self.n if self.n else 0.0

    def headline(self) -> dict[str, float]:
        return {"macro_f1": self.macro_f1, "micro_f1": self.micro_f1, "weighted_f1": self.weighted_f1,
                "accuracy": self.accuracy, "macro_precision": self.macro_precision,
                "macro_recall": self.macro_recall, "unparseable_rate": self.unparseable_rate,
                "unparseable_count": float(self.unparseable), "n": float(self.n)}


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


def prf_from_counts(tp: np.ndarray, support: np.ndarray,
                    predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from float count arrays; 0/0 gives 0."""
    zeros = np.zeros_like(tp, dtype=float)
    p = np.divide(tp, predicted, out=zeros.copy(), where=predicted > 0)
    r = np.divide(tp, support, out=zeros.copy(), where=support > 0)
    s = p + r
    return p, r, np.divide(2 * p * r, s, out=zeros, where=s > 0)


def macro_average(values: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> float:
    """Mean of per-class ``values`` over the labels present in the truth or the predictions."""
    present = (support > 0) | (predicted > 0)
    return float(values[present].mean()) if present.any() else 0.0


def macro_f1_codes(true_idx: np.ndarray, pred_idx: np.ndarray, k: int) -> float:
    """Macro-F1 of integer-coded labels (``0..k-1``; ``k`` = unparseable), vectorised.

    Equals ``classification_report(...).macro_f1`` (tested); for loops such as the paired bootstrap.
    """
    tp = np.bincount(true_idx[true_idx == pred_idx], minlength=k + 1)[:k].astype(float)
    support = np.bincount(true_idx, minlength=k + 1)[:k].astype(float)
    predicted = np.bincount(pred_idx, minlength=k + 1)[:k].astype(float)
    return macro_average(prf_from_counts(tp, support, predicted)[2], support, predicted)


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    idx = {lab: i for i, lab in enumerate(labels)}
    cols = len(labels) + 1
    cm = np.zeros((len(labels), cols), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        if t not in idx:
            raise ValueError(f"true label {t!r} is not in the label set")
        cm[idx[t], idx.get(p, cols - 1)] += 1
    return cm


def classification_report(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> Report:
    """Strict metrics of ``y_pred`` against ``y_true`` over the configured ``labels``."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} truths but {len(y_pred)} predictions")
    labels = tuple(labels)
    unknown = {p for p in y_pred if p != UNPARSEABLE and p not in labels}
    if unknown:
        raise ValueError(f"predictions outside the label set: {sorted(unknown)[:3]}")
    cm = confusion_matrix(y_true, y_pred, labels)
    k = len(labels)
    tp = np.diag(cm[:, :k]).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm[:, :k].sum(axis=0).astype(float)
    p, r, f1 = prf_from_counts(tp, support, predicted)
    per_class = {lab: ClassMetrics(float(p[i]), float(r[i]), float(f1[i]), int(support[i]), int(predicted[i]))
                 for i, lab in enumerate(labels)}
    present = (support > 0) | (predicted > 0)
    weights = support[present]
    weighted = float(np.dot(f1[present], weights) / weights.sum()) if weights.sum() else 0.0
    # micro: the same formula on the counts pooled over the configured labels
    micro_p, micro_r, micro_f1 = (float(x[0]) for x in prf_from_counts(
        np.array([tp.sum()]), np.array([support.sum()]), np.array([predicted.sum()])))
    n = len(y_true)
    unparseable = int(sum(1 for p in y_pred if p == UNPARSEABLE))
    return Report(labels, per_class, macro_average(p, support, predicted), macro_average(r, support, predicted),
                  macro_average(f1, support, predicted), micro_p, micro_r, micro_f1, weighted,
                  _div(tp.sum(), n), n, unparseable, cm)


def lenient_truth(y_true: Sequence[str], y_pred: Sequence[str],
                  acceptable: Sequence[Sequence[str]]) -> list[str]:
    """The row's truth under lenient scoring: the prediction when it is acceptable."""
    return [p if (acc and p in acc) else t for t, p, acc in zip(y_true, y_pred, acceptable)]


def correct(y_true: Sequence[str], y_pred: Sequence[str]) -> np.ndarray:
    """Per-item correctness (bool array), the input of paired tests."""
    return np.array([t == p for t, p in zip(y_true, y_pred)], dtype=bool)
