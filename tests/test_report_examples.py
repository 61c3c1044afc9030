"""The report's generation view on a recorded run folder: which examples it shows (a seeded sample in data
order, the largest gains and losses by delta), and what it says when the run has no examples table."""

from __future__ import annotations

import json

from ftlab.report.examples import EXTREMES, SAMPLE_ROWS, generation_keys, generation_view
from ftlab.runs import RecordedRun


def _run(tmp_path, deltas, task="summarization", table=True):
    out = tmp_path / "compare" / "eval"
    out.mkdir(parents=True)
    if table:
        rows = [[f"r{i}", "x" * 500, f"ref {i}", f"base {i}", f"tuned {i}", 0.5, 0.5 + d, d] for i, d in enumerate(deltas)]
        (out / "examples.json").write_text(json.dumps({"columns": ["id", "input", "reference", "base_output",
                                                                   "tuned_output", "base_rougeL_f1",
                                                                   "tuned_rougeL_f1", "delta"], "data": rows}))
    metrics = {f"eval/{s}/eval/{k}": 0.3 for s in ("base", "tuned") for k in ("rougeL_f1", "bleu4", "failed_rows")}
    metrics.update({"compare/eval/rougeL_f1_delta": 0.01, "compare/eval/rougeL_f1_delta_ci_low": -0.02,
                    "compare/eval/rougeL_f1_delta_ci_high": 0.04, "compare/eval/rougeL_f1_wins": 3.0,
                    "compare/eval/rougeL_f1_ties": 1.0, "compare/eval/rougeL_f1_losses": 2.0})
    return RecordedRun("r" * 32, "0", "exp", "run", "FINISHED", 0, metrics, {"eval.task": task}, {}, "", tmp_path)


def test_gains_and_losses_are_the_largest_deltas_and_the_sample_keeps_data_order(tmp_path, plugins):
    deltas = [0.0, 0.3, -0.1, 0.05, -0.4, 0.2, 0.0, -0.05, 0.1, 0.6, -0.2, 0.01, 0.0, 0.02, -0.3]
    run = _run(tmp_path, deltas)
    keys = generation_keys(run, "eval")
    assert keys[:2] == ["rougeL_f1", "bleu4"]  # the task's headline order, only what was logged
    v = generation_view(run, "eval", keys, lambda rel, title: None)
    assert v.key == "rougeL_f1" and v.n == len(deltas)
    assert [r.id for r in v.gains] == ["r9", "r1", "r5", "r8", "r3"][:EXTREMES]
    assert [r.id for r in v.losses] == ["r4", "r14", "r10", "r2", "r7"][:EXTREMES]
    assert len(v.sample) == SAMPLE_ROWS and [int(r.id[1:]) for r in v.sample] == sorted(int(r.id[1:]) for r in v.sample)
    assert all(len(r.input) == 300 and r.input.endswith("…") for r in v.sample)  # the input is an excerpt
    assert generation_view(run, "eval", keys, lambda rel, title: None).sample == v.sample  # seeded
    (c,) = [c for c in v.comparisons if c.key == "rougeL_f1"]
    assert (c.delta, c.ci_low, c.ci_high, c.wins, c.ties, c.losses) == (0.01, -0.02, 0.04, 3, 1, 2)


def test_no_gains_no_losses_and_no_table(tmp_path, plugins):
    v = generation_view(_run(tmp_path / "a", [0.0, 0.0]), "eval", ["rougeL_f1"], lambda rel, title: None)
    assert v.n == 2 and v.gains == [] and v.losses == [] and len(v.sample) == 2
    v = generation_view(_run(tmp_path / "b", [], table=False), "eval", ["rougeL_f1"], lambda rel, title: None)
    assert v.n == 0 and v.sample == []
    assert generation_keys(_run(tmp_path / "c", [], task="classification", table=False), "eval") is None
