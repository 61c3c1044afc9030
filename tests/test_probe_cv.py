"""benchmarks/probe_cv.py: lenient scoring, layer blocks, paired CV rows, and the probe on features that separate."""

from __future__ import annotations


import numpy as np
import pytest

from ftlab.contract import Example
from ftlab.cv import assign_folds

from conftest import benchmark_module



def _module():
    return benchmark_module("probe_cv")


def _ex(i: int, label: str, acceptable=()) -> Example:
    return Example(id=f"train-{i}", text=f"{label} words row {i}", label=label, acceptable=tuple(acceptable))


def test_lenient_counts_an_acceptable_prediction_as_right_and_strict_does_not():
    mod = _module()
    exs = [_ex(0, "a", ("a", "b")), _ex(1, "b"), _ex(2, "a")]
    strict, lenient = mod.macro_f1s(["a", "b", "a"], ["b", "b", "a"], exs)
    # strict: a has P 1 R 0.5 (F1 2/3), b has P 0.5 R 1 (F1 2/3); lenient: every row right
    assert strict == pytest.approx(2 / 3)
    assert lenient == pytest.approx(1.0)


def test_dense_takes_the_named_layers_blocks_and_normalises_each():
    torch = pytest.importorskip("torch")
    mod = _module()
    width, layers = 3, mod.LAYERS
    f = torch.arange(4 * width * len(layers), dtype=torch.float).reshape(4, -1)
    feats = {"layers": layers, "train": {"first1024": f, "full": f * 2}}
    d = mod.dense(feats, "train", {"layers": [8, 30]})
    assert d.shape == (4, 2 * width)
    np.testing.assert_allclose(d.mean(1), 0.0, atol=1e-6)  # each block centred, so the row too
    # block of layer 8 (index 1 in LAYERS) is columns 3..5 before normalising: a ramp, so [-1.22, 0, 1.22]
    np.testing.assert_allclose(d[0, :width], [-1.2247, 0.0, 1.2247], atol=1e-3)


def test_cv_rows_pair_with_the_floor_and_a_separating_feature_wins():
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    mod = _module()
    rng = np.random.default_rng(0)
    labels = [l for l in "abc" for _ in range(10)]
    train = [_ex(i, lab) for i, lab in enumerate(labels)]
    # text carries no signal (same words per row bar the label-free index); the dense features do
    train = [Example(id=e.id, text=f"row {i} same words", label=e.label) for i, e in enumerate(train)]
    width = 4
    onehot = np.eye(3)[["abc".index(l) for l in labels]]
    block = np.hstack([onehot * 5, rng.normal(size=(30, 1))]) + rng.normal(scale=0.1, size=(30, width))
    f = torch.tensor(np.hstack([rng.normal(size=(30, width))] * 7 + [block]), dtype=torch.float)
    feats = {"layers": mod.LAYERS, "train": {"first1024": f, "full": f}}
    folds = np.array(assign_folds(train, 5, 0, "text"))
    probe = mod.cv_scores({"clf": "lr", "C": 1.0, "layers": [30]}, train, folds, feats)
    noise = mod.cv_scores({"clf": "lr", "C": 1.0, "layers": [4]}, train, folds, feats)
    assert probe.shape == (5, 2) and probe[:, 0].mean() > 0.9
    assert noise[:, 0].mean() < 0.7
    text = mod.table([("noise floor", noise, None), ("final layer", probe, (0.9, 0.95))])
    row = next(line for line in text.splitlines() if line.startswith("| final layer"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3].endswith("(> 2 SE)") and cells[5] == "0.900 / 0.950"
    assert "| noise floor |" in text and text.splitlines()[2].split("|")[4].strip() == "-"
