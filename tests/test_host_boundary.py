"""Grep-level guards of issue 10: the host names no backend, and the tree has one F1 implementation.

The host (``src/ftlab``) composes, scores and logs; what a backend is (its name, model formats, the
default model) lives in ``plugins/``, ``conf/``, ``experiments/`` and ``docs/``. Each check reads the
files as text, so a mention in a docstring or a comment counts too: say "a backend", not its name.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOST = sorted((ROOT / "src" / "ftlab").rglob("*.py"))
TREE = sorted(p for base in ("src", "plugins", "tests", "benchmarks") for p in (ROOT / base).rglob("*.py")
              if ".venv" not in p.parts and "site-packages" not in p.parts
              and p != Path(__file__).resolve())  # this file spells the formula out as test input

BACKEND_WORDS = re.compile(r"local_peft|local-peft|bqml|gguf|smollm2", re.IGNORECASE)
F1_FORMULA = re.compile(r"2(?:\.0)?\s*\*\s*\(?\s*(?:p|prec\w*|tp)\b\s*[*/+)]", re.IGNORECASE)
"""The F1 formula, written as 2pr/(p+r) or 2tp/(2tp+fp+fn)."""
SKLEARN_F1 = re.compile(r"(?:from sklearn\.metrics import[^\n]*|sklearn\.metrics\.)"
                        r"\b(?:f1_score|precision_recall_fscore_support|fbeta_score)\b")
"""scikit-learn's F1 imported or called (``f1_score`` alone is also a BigQuery column name)."""
ORACLES = {"tests/test_crosscheck.py", "tests/test_metrics.py", "plugins/tfidf/tests/test_tfidf.py"}
"""Tests that check ftlab's numbers against scikit-learn's (an oracle, not an implementation)."""


def test_the_host_tree_is_what_this_test_reads():
    assert len(HOST) > 20 and ROOT / "src" / "ftlab" / "runner.py" in HOST


@pytest.mark.parametrize("path", HOST, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_host_module_names_a_backend_or_its_model(path):
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
            if BACKEND_WORDS.search(line)]
    assert not hits, f"{path.relative_to(ROOT)} names a backend or its model format:\n" + "\n".join(hits)


def test_the_boundary_pattern_catches_each_word():
    for word in ("local_peft", "ftlab-local-peft", "BQML", "GGUF file", "SmolLM2-135M"):
        assert BACKEND_WORDS.search(word), word
    assert not BACKEND_WORDS.search("a backend plugin registers its model sources")


def test_one_f1_implementation_in_the_tree():
    found = [f"{p.relative_to(ROOT)}:{i}" for p in TREE for i, line in enumerate(p.read_text().splitlines(), 1)
             if F1_FORMULA.search(line) and not line.lstrip().startswith("#")]
    assert len(found) == 1 and found[0].startswith("src/ftlab/metrics/classification.py:"), found
    sklearn = sorted({str(p.relative_to(ROOT)) for p in TREE if SKLEARN_F1.search(p.read_text())
                      and "src/ftlab/metrics/classification.py" != str(p.relative_to(ROOT))})
    assert set(sklearn) <= ORACLES, f"F1 from scikit-learn outside the oracle tests: {set(sklearn) - ORACLES}"


@pytest.mark.parametrize("line", ["return 2 * p * r / (p + r)", "f1 = 2*tp / (2*tp + fp + fn)",
                                  "f = 2.0 * precision * recall / (precision + recall)"])
def test_the_f1_pattern_catches_the_usual_spellings(line):
    assert F1_FORMULA.search(line)


def test_the_sklearn_pattern_catches_imports_not_column_names():
    assert SKLEARN_F1.search("from sklearn.metrics import accuracy_score, f1_score")
    assert SKLEARN_F1.search("m = sklearn.metrics.f1_score(a, b)")
    assert not SKLEARN_F1.search('numeric["f1_score"] = numeric.pop("f1")')
