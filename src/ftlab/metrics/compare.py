"""Paired base-vs-tuned comparison on identical items.

- macro-F1 delta with a **paired bootstrap** interval: resample item indices with replacement
  (seeded), recompute both macro-F1s on the same resample, take percentiles of the difference;
- **McNemar's exact test** on per-item correctness: a two-sided binomial test on the discordant
  pairs (``scipy.stats.binomtest(b, b + c, 0.5)``); p = 1 when there are none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ftlab.metrics.classification import classification_report, correct, macro_f1_codes


@dataclass(frozen=True)
class PairedComparison:
    n: int
    macro_f1_a: float
    macro_f1_b: float
    macro_f1_delta: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    accuracy_delta: float
    only_a_correct: int
    """Items the first (base) model got right and the second (tuned) got wrong."""
    only_b_correct: int
    mcnemar_p: float

    def metrics(self) -> dict[str, float]:
        return {"macro_f1_delta": self.macro_f1_delta, "macro_f1_delta_ci_low": self.ci_low,
                "macro_f1_delta_ci_high": self.ci_high, "mcnemar_p": self.mcnemar_p,
                "accuracy_delta": self.accuracy_delta, "only_base_correct": float(self.only_a_correct),
                "only_tuned_correct": float(self.only_b_correct)}


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, float]:
    from scipy.stats import binomtest

    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
    return b, c, p


def paired_compare(y_true: Sequence[str], pred_a: Sequence[str], pred_b: Sequence[str],
                   labels: Sequence[str], resamples: int = 1000, seed: int = 0,
                   confidence: float = 0.95) -> PairedComparison:
    """Compare prediction sets ``a`` (base) and ``b`` (tuned) on the same items."""
    n = len(y_true)
    if not (len(pred_a) == len(pred_b) == n):
        raise ValueError("paired comparison needs both prediction sets on the same items")
    code = {lab: i for i, lab in enumerate(labels)}
    k = len(labels)
    t = np.array([code[x] for x in y_true])
    a = np.array([code.get(x, k) for x in pred_a])
    b = np.array([code.get(x, k) for x in pred_b])
    f1_a = classification_report(y_true, pred_a, labels).macro_f1
    f1_b = classification_report(y_true, pred_b, labels).macro_f1
    rng = np.random.default_rng(seed)
    deltas = np.empty(resamples)
    for r in range(resamples):
        idx = rng.integers(0, n, n)
        deltas[r] = macro_f1_codes(t[idx], b[idx], k) - macro_f1_codes(t[idx], a[idx], k)
    alpha = (1 - confidence) / 2
    lo, hi = (np.quantile(deltas, [alpha, 1 - alpha]) if resamples else (np.nan, np.nan))
    ca, cb = correct(y_true, pred_a), correct(y_true, pred_b)
    only_a, only_b, p = mcnemar_exact(ca, cb)
    return PairedComparison(n, f1_a, f1_b, f1_b - f1_a, float(lo), float(hi), confidence, resamples,
                            float(cb.mean() - ca.mean()), only_a, only_b, p)
