"""ftlab's evaluator against scikit-learn and hand-computed tables."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from ftlab.contract import UNPARSEABLE
from ftlab.metrics.classification import classification_report, lenient_truth

LABELS17 = [f"L{i:02d}" for i in range(17)]


def _random_case(seed, n=300, p_unparseable=0.1, absent=()):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(17))
    truth = list(rng.choice(LABELS17, n, p=probs))
    pred = []
    for t in truth:
        r = rng.random()
        if r < p_unparseable:
            pred.append(UNPARSEABLE)
        elif r < 0.6:
            pred.append(t)
        else:
            pred.append(str(rng.choice([x for x in LABELS17 if x not in absent])))
    pred = [p if p not in absent else UNPARSEABLE for p in pred]
    return truth, pred


def _sk(truth, pred, labels, average):
    return precision_recall_fscore_support(truth, pred, labels=labels, average=average, zero_division=0)


@pytest.mark.parametrize("seed,p_unp,absent", [(0, 0.0, ()), (1, 0.1, ()), (2, 0.3, ("L03", "L07")),
                                                (3, 0.05, ("L00",))])
def test_matches_sklearn_on_17_classes(seed, p_unp, absent):
    truth, pred = _random_case(seed, p_unparseable=p_unp, absent=absent)
    rep = classification_report(truth, pred, LABELS17)
    present = sorted(set(truth) | (set(pred) - {UNPARSEABLE}))
    p, r, f, s = _sk(truth, pred, LABELS17, None)
    for i, lab in enumerate(LABELS17):
        m = rep.per_class[lab]
        assert (m.precision, m.recall, m.f1, m.support) == pytest.approx((p[i], r[i], f[i], s[i]))
    for name, avg in (("macro", "macro"), ("weighted", "weighted")):
        sk = _sk(truth, pred, present, avg)
        assert getattr(rep, f"{name}_f1") == pytest.approx(sk[2])
    assert rep.macro_precision == pytest.approx(_sk(truth, pred, present, "macro")[0])
    micro = _sk(truth, pred, LABELS17, "micro")
    assert (rep.micro_precision, rep.micro_recall, rep.micro_f1) == pytest.approx(micro[:3])
    assert rep.accuracy == pytest.approx(accuracy_score(truth, pred))
    assert rep.unparseable == pred.count(UNPARSEABLE)
    for lab in absent:
        assert rep.per_class[lab].predicted == 0 and rep.per_class[lab].precision == 0


def test_hand_built_three_classes():
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", UNPARSEABLE, UNPARSEABLE]
    rep = classification_report(truth, pred, ["a", "b", "c", "d"])
    # a: tp2 fp0 fn1 → P1 R2/3 F0.8; b: tp1 fp1 fn1 → 0.5/0.5/0.5; c: tp0 → 0; d: absent → skipped
    assert rep.per_class["a"].f1 == pytest.approx(0.8)
    assert rep.per_class["b"].f1 == pytest.approx(0.5)
    assert rep.per_class["c"].f1 == 0 and rep.per_class["d"].support == 0
    assert rep.macro_f1 == pytest.approx((0.8 + 0.5 + 0) / 3)
    assert rep.accuracy == pytest.approx(3 / 6)
    assert rep.micro_precision == pytest.approx(3 / 4) and rep.micro_recall == pytest.approx(3 / 6)
    assert rep.unparseable_rate == pytest.approx(2 / 6)
    assert rep.confusion.tolist() == [[2, 1, 0, 0, 0], [0, 1, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]


def test_all_unparseable():
    truth = ["a", "b", "b"]
    rep = classification_report(truth, [UNPARSEABLE] * 3, ["a", "b"])
    assert rep.macro_f1 == rep.micro_f1 == rep.accuracy == 0.0
    assert rep.unparseable_rate == 1.0
    assert rep.confusion[:, -1].tolist() == [1, 2]


def test_weighted_is_not_micro():
    truth = ["a"] * 8 + ["b"] * 2
    pred = ["a"] * 6 + ["b"] * 2 + ["b"] * 2
    rep = classification_report(truth, pred, ["a", "b"])
    assert rep.weighted_f1 == pytest.approx(_sk(truth, pred, ["a", "b"], "weighted")[2])
    assert rep.weighted_f1 != pytest.approx(rep.micro_f1)


def test_lenient_truth_uses_prediction_when_acceptable():
    truth = ["a", "a", "b"]
    pred = ["b", "c", "b"]
    acc = [("a", "b"), ("a",), ()]
    assert lenient_truth(truth, pred, acc) == ["b", "a", "b"]
    rep = classification_report(lenient_truth(truth, pred, acc), pred, ["a", "b", "c"])
    assert rep.accuracy == pytest.approx(2 / 3)


def test_rejects_predictions_outside_the_label_set():
    with pytest.raises(ValueError, match="outside the label set"):
        classification_report(["a"], ["z"], ["a"])
