"""benchmarks/results_summarize.py (``make results-summarize``): the table reads each run's per-example
scores and pairs tuned with base and with the extractive floor on the same rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import benchmark_module

KEYS = ("rougeL_f1", "rouge1_f1", "rouge2_f1", "rougeLsum_f1")


def _module(base: Path):
    mod = benchmark_module("results_summarize")
    mod.BASE = base
    return mod


def _stage(run: Path, stage: str, scores: list[float], ids: list[str] | None = None, corpus_shift: float = 0.0):
    d = run / "eval" / stage / "eval"
    d.mkdir(parents=True)
    ids = ids or [f"r{i}" for i in range(len(scores))]
    rows = [{"id": i, "metrics": {k: s for k in KEYS}} for i, s in zip(ids, scores)]
    (d / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = {f"eval/{stage}/eval/{k}": float(np.mean(scores)) + corpus_shift for k in KEYS}
    metrics.update({f"eval/{stage}/eval/bleu4": 0.1, f"eval/{stage}/eval/chrf": 30.0})
    (d / "metrics.json").write_text(json.dumps(metrics))


def test_tuned_is_paired_with_base_and_floor_row_by_row(tmp_path, capsys):
    rng = np.random.default_rng(0)
    floor = rng.uniform(0.2, 0.4, 50)
    _stage(tmp_path / "floor", "base", list(floor - 0.01))
    _stage(tmp_path / "floor", "tuned", list(floor))
    for s, lift in ((1, 0.10), (2, 0.12)):
        _stage(tmp_path / f"seed_{s}", "base", list(floor - 0.2))
        _stage(tmp_path / f"seed_{s}", "tuned", list(floor + lift))  # the same lift on every row: CI = the lift
    out = tmp_path / "table.md"
    assert _module(tmp_path).main(["--seeds", "1", "2", "--reuse", "--output", str(out)]) == 0
    text = out.read_text()
    seed1 = next(line for line in text.splitlines() if line.startswith("| tuned, seed 1"))
    assert "+0.300 [+0.300, +0.300]" in seed1 and "+0.100 [+0.100, +0.100]" in seed1
    mean = next(line for line in text.splitlines() if line.startswith("| **tuned, mean"))
    assert f"**{np.mean(floor) + 0.11:.3f}**" in mean and "+0.110" in mean
    assert "extractive floor" in text and "base model" in text


def test_a_corpus_value_that_is_not_the_rows_mean_or_other_rows_fail(tmp_path):
    _stage(tmp_path / "floor", "tuned", [0.3, 0.4])
    _stage(tmp_path / "seed_1", "base", [0.1, 0.2])
    _stage(tmp_path / "seed_1", "tuned", [0.4, 0.5], corpus_shift=0.05)
    with pytest.raises(RuntimeError, match="not the mean of its rows"):
        _module(tmp_path).main(["--seeds", "1", "--reuse", "--output", str(tmp_path / "t.md")])
    (tmp_path / "seed_1" / "eval" / "tuned").rename(tmp_path / "old")
    _stage(tmp_path / "seed_1", "tuned", [0.4, 0.5], ids=["r1", "r0"])
    with pytest.raises(RuntimeError, match="same rows"):
        _module(tmp_path).main(["--seeds", "1", "--reuse", "--output", str(tmp_path / "t.md")])
