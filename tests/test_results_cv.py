"""benchmarks/results_cv.py (``make results``): the table reads each run's CV folds and pairs them with the floor's."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import benchmark_module

ROOT = Path(__file__).resolve().parents[1]


def _module():
    return benchmark_module("results_cv")


def _run(tmp: Path, name: str, strict: list[float], lenient: list[float], eval_: tuple[float, float]) -> Path:
    d = tmp / name
    (d / "cv").mkdir(parents=True)
    summary = {"cv/folds": float(len(strict))}
    for i, (s, l) in enumerate(zip(strict, lenient), 1):
        summary[f"cv/fold_{i}/macro_f1"] = s
        summary[f"cv/fold_{i}/lenient/macro_f1"] = l
    (d / "cv" / "summary.json").write_text(json.dumps(summary))
    m = d / "eval" / "tuned" / "eval"
    m.mkdir(parents=True)
    (m / "metrics.json").write_text(json.dumps({"eval/tuned/eval/macro_f1": eval_[0],
                                                "eval/tuned/eval/lenient/macro_f1": eval_[1]}))
    return d


def test_the_table_pairs_each_recipe_with_the_floor_fold_by_fold(tmp_path):
    mod = _module()
    floor = _run(tmp_path, "tfidf", [0.4, 0.5, 0.6], [0.5, 0.6, 0.7], (0.45, 0.57))
    # the recipe leads by 0.05 on every fold: the paired SE is 0, far below the unpaired one
    rec = _run(tmp_path, "default", [0.45, 0.55, 0.65], [0.5, 0.6, 0.71], (0.5, 0.6))
    text = mod.table({"tfidf": floor, "default": rec}, {"default": 120.0})
    row = next(line for line in text.splitlines() if line.startswith("| default recipe"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "0.550 ± 0.058"
    assert cells[3] == "+0.050 ± 0.000 (> 2 SE)"
    assert cells[4].startswith("+0.003 ± 0.003 (within 2 SE)")
    assert cells[5] == "0.500 / 0.600" and cells[6] == "2.0 min"


def test_an_unknown_recipe_is_refused_by_name(capsys):
    mod = _module()
    try:
        mod.main(["--only", "nope", "--reuse"])
    except SystemExit as e:
        assert e.code == 2
    assert "unknown recipe ['nope']" in capsys.readouterr().err
