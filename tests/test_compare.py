"""Paired comparison: bootstrap interval and McNemar's exact test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from ftlab.contract import UNPARSEABLE
from ftlab.metrics.classification import classification_report
from ftlab.metrics.compare import _macro_f1_fast, paired_compare

LABELS = ["a", "b", "c", "d"]


def _case(seed=0, n=200):
    rng = np.random.default_rng(seed)
    truth = list(rng.choice(LABELS, n))
    base = [t if rng.random() < 0.4 else (UNPARSEABLE if rng.random() < 0.2 else str(rng.choice(LABELS)))
            for t in truth]
    tuned = [t if rng.random() < 0.75 else str(rng.choice(LABELS)) for t in truth]
    return truth, base, tuned


def test_fast_macro_f1_equals_report():
    truth, base, _ = _case(1)
    code = {lab: i for i, lab in enumerate(LABELS)}
    t = np.array([code[x] for x in truth])
    p = np.array([code.get(x, 4) for x in base])
    assert _macro_f1_fast(t, p, 4) == pytest.approx(classification_report(truth, base, LABELS).macro_f1)


def test_delta_ci_and_mcnemar():
    truth, base, tuned = _case()
    c = paired_compare(truth, base, tuned, LABELS, resamples=500, seed=3)
    assert c.macro_f1_delta == pytest.approx(classification_report(truth, tuned, LABELS).macro_f1
                                             - classification_report(truth, base, LABELS).macro_f1)
    assert c.ci_low < c.macro_f1_delta < c.ci_high
    assert c.ci_low > 0  # a clearly better model
    b = sum(1 for t, x, y in zip(truth, base, tuned) if x == t and y != t)
    cc = sum(1 for t, x, y in zip(truth, base, tuned) if x != t and y == t)
    assert (c.only_a_correct, c.only_b_correct) == (b, cc)
    assert c.mcnemar_p == pytest.approx(binomtest(b, b + cc, 0.5).pvalue)
    assert c.mcnemar_p < 0.001


def test_seeded_and_identical_sets():
    truth, base, tuned = _case(2)
    assert paired_compare(truth, base, tuned, LABELS, 200, seed=7) == \
        paired_compare(truth, base, tuned, LABELS, 200, seed=7)
    same = paired_compare(truth, base, base, LABELS, 200)
    assert same.macro_f1_delta == 0 and same.ci_low == same.ci_high == 0 and same.mcnemar_p == 1.0


def test_needs_the_same_items():
    with pytest.raises(ValueError, match="same items"):
        paired_compare(["a", "b"], ["a"], ["a", "b"], LABELS)
