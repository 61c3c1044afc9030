"""Paired comparison: bootstrap interval and McNemar's exact test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from ftlab.contract import UNPARSEABLE
from ftlab.metrics.classification import classification_report, macro_f1_codes
from ftlab.metrics.compare import paired_compare

LABELS = ["a", "b", "c", "d"]


def _case(seed=0, n=200):
    rng = np.random.default_rng(seed)
    truth = list(rng.choice(LABELS, n))
    base = [t if rng.random() < 0.4 else (UNPARSEABLE if rng.random() < 0.2 else str(rng.choice(LABELS)))
            for t in truth]
    tuned = [t if rng.random() < 0.75 else str(rng.choice(LABELS)) for t in truth]
    return truth, base, tuned


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_macro_f1_equals_the_report_exactly(seed):
    """The bootstrap's macro_f1_codes and classification_report share one formula: same float."""
    truth, base, tuned = _case(seed, n=30 + 17 * seed)
    labels = LABELS + ["never_seen"]  # a configured label absent from truth and predictions
    code = {lab: i for i, lab in enumerate(labels)}
    t = np.array([code[x] for x in truth])
    for pred in (base, tuned, [UNPARSEABLE] * len(truth), ["a"] * len(truth)):
        p = np.array([code.get(x, len(labels)) for x in pred])
        assert macro_f1_codes(t, p, len(labels)) == classification_report(truth, pred, labels).macro_f1


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
