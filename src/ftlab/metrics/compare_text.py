"""Paired base-vs-tuned comparison of a generation task, for every headline metric.

For each key: both corpus values, their difference, and a **paired bootstrap** interval: resample
row indices with replacement (seeded), recompute both corpus values on the same rows from their
summed per-example statistics (no re-tokenising; corpus BLEU is resampled exactly as sacrebleu's
own paired bootstrap does), take the percentiles of the difference. Per-example **wins, ties and
losses** count the rows whose own score went up, stayed equal or went down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class TextComparison:
    key: str
    n: int
    base: float
    tuned: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    wins: int
    """Rows whose own score is higher tuned than base."""
    ties: int
    losses: int

    def metrics(self) -> dict[str, float]:
        k = self.key
        return {f"{k}_delta": self.delta, f"{k}_delta_ci_low": self.ci_low, f"{k}_delta_ci_high": self.ci_high,
                f"{k}_wins": float(self.wins), f"{k}_ties": float(self.ties), f"{k}_losses": float(self.losses)}

    def to_json(self) -> dict:
        return asdict(self)


def paired_compare_text(base, tuned, keys: Sequence[str], resamples: int = 1000, seed: int = 0,
                        confidence: float = 0.95, tol: float = 1e-9) -> dict[str, TextComparison]:
    """Compare two :class:`ftlab.evaluate_text.TextScored` on the same rows, for each of ``keys``."""
    if [p.id for p in base.items] != [p.id for p in tuned.items]:
        raise ValueError("paired comparison needs both prediction sets on the same rows, in the same order")
    n = len(base.items)
    idx = bootstrap_indices(n, resamples, seed)
    lo, hi = (1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100
    out = {}
    for key in keys:
        if key not in base.stats or key not in tuned.stats:
            continue
        a, b = base.value(key), tuned.value(key)
        if _is_mean(base, key) and _is_mean(tuned, key):  # vectorised: a mean of per-row values
            va = base.stats[key][:, 0] / np.maximum(base.stats[key][:, 1], 1e-12)
            vb = tuned.stats[key][:, 0] / np.maximum(tuned.stats[key][:, 1], 1e-12)
            deltas = resampled_mean_deltas(va, vb, idx)
        else:
            deltas = np.array([tuned.value(key, r) - base.value(key, r) for r in idx])
        pa = np.array([e.get(key, np.nan) for e in base.per_example])
        pb = np.array([e.get(key, np.nan) for e in tuned.per_example])
        wins, losses = int(np.sum(pb > pa + tol)), int(np.sum(pb < pa - tol))
        out[key] = TextComparison(key, n, a, b, b - a, float(np.percentile(deltas, lo)),
                                  float(np.percentile(deltas, hi)), confidence, resamples, wins,
                                  n - wins - losses, losses)
    return out


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n]`` row indices drawn with replacement (seeded): every key shares them."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n)) if n else np.zeros((resamples, 0), dtype=int)


def resampled_mean_deltas(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean of ``b - a`` over each resample's rows (a metric that is a mean of per-row values)."""
    return (b[idx] - a[idx]).mean(1) if idx.shape[1] else np.zeros(len(idx))


def mean_delta_interval(a, b, resamples: int = 1000, seed: int = 0,
                        confidence: float = 0.95) -> tuple[float, float, float]:
    """``mean(b) - mean(a)`` of paired per-row values and its paired bootstrap percentile interval,
    as :func:`paired_compare_text` computes it for a mean metric (e.g. across two runs' files)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    deltas = resampled_mean_deltas(a, b, bootstrap_indices(len(a), resamples, seed))
    lo, hi = (1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100
    return float(b.mean() - a.mean()), float(np.percentile(deltas, lo)), float(np.percentile(deltas, hi))


def _is_mean(scored, key: str) -> bool:
    st = scored.stats[key]
    return st.ndim == 2 and st.shape[1] == 2 and bool(np.all(st[:, 1] == 1))
