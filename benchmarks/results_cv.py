"""The default task's selection-free results table (``make results``; issue 17).

Runs each recipe as an ordinary ftlab experiment with ``eval.cv.folds=5``: grouped, stratified 5-fold
cross-validation on the training split (the same folds for every recipe: same rows, seed and
grouping), then the configured training on all of train and one score on eval. Prints and writes
``benchmarks/results_cv.md``: per recipe the CV mean ± standard error of strict and lenient macro-F1,
the paired per-fold difference to the CV-chosen tfidf floor (mean ± standard error of the five
differences: the folds are shared, so the pairing removes the fold-to-fold variance), the eval
split's numbers and the wall time. Nothing here is chosen on eval: the eval column is reported, never
selected on.

    python benchmarks/results_cv.py [--only KEY ...] [--reuse] [--output FILE]

``--reuse`` reads run folders an earlier call left under ``outputs/results/`` instead of re-running.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from _common import run_ftlab  # this folder

ROOT = Path(__file__).resolve().parents[1]
FLOOR = "tfidf"
# key, what it is, experiment, extra overrides
RECIPES = [
    (FLOOR, "tfidf floor (C, min_df chosen by this CV: mtsamples17_tfidf_search)", "mtsamples17_tfidf", []),
    ("default", "default recipe (lora_cls, LP-FT; make run)", "mtsamples17_lora_local", []),
    ("layers", "default + document means of layers 8, 24, 30 (chosen by benchmarks/probe_cv.py)",
     "mtsamples17_lora_local", ["backend.document_layers=[8,24,30]"]),
]
METRICS = (("macro_f1", "strict"), ("lenient/macro_f1", "lenient"))


def fold_values(run_dir: Path, metric: str) -> list[float]:
    """``cv/fold_<i>/<metric>`` for i = 1..k from the run's ``cv/summary.json``."""
    summary = json.loads((run_dir / "cv" / "summary.json").read_text())
    k = int(summary["cv/folds"])
    return [summary[f"cv/fold_{i}/{metric}"] for i in range(1, k + 1)]


def eval_value(run_dir: Path, metric: str) -> float:
    """The tuned model's eval-split value of ``metric`` (``lenient/…`` from its lenient block)."""
    path = run_dir / "eval" / "tuned" / "eval" / "metrics.json"
    return json.loads(path.read_text())[f"eval/tuned/eval/{metric}"]


def mean_se(vals: list[float]) -> tuple[float, float]:
    n = len(vals)
    mean = sum(vals) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else math.nan
    return mean, sd / math.sqrt(n)


def table(dirs: dict[str, Path], walls: dict[str, float]) -> str:
    head = ("| recipe | CV strict | CV lenient | Δ strict vs floor (paired) | Δ lenient vs floor (paired) "
            "| eval strict / lenient | wall |\n|---|---|---|---|---|---|---|\n")
    rows = []
    floor = {m: fold_values(dirs[FLOOR], m) for m, _ in METRICS} if FLOOR in dirs else None
    for key, what, _, _ in RECIPES:
        if key not in dirs:
            continue
        cells = [what]
        vals = {m: fold_values(dirs[key], m) for m, _ in METRICS}
        for m, _ in METRICS:
            cells.append("%.3f ± %.3f" % mean_se(vals[m]))
        for m, _ in METRICS:
            if floor is None or key == FLOOR:
                cells.append("-")
                continue
            d, se = mean_se([a - b for a, b in zip(vals[m], floor[m])])
            cells.append(f"{d:+.3f} ± {se:.3f} ({'> 2 SE' if d > 2 * se else 'within 2 SE'})")
        try:
            cells.append(" / ".join(f"{eval_value(dirs[key], m):.3f}" for m, _ in METRICS))
        except (OSError, KeyError):
            cells.append("-")
        cells.append(f"{walls[key] / 60:.1f} min" if key in walls else "-")
        rows.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="recipe keys to run (default: all)")
    ap.add_argument("--reuse", action="store_true", help="read outputs/results/<key> instead of running")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results_cv.md")
    args = ap.parse_args(argv)
    keys = [k for k, *_ in RECIPES]
    unknown = sorted(set(args.only or ()) - set(keys))
    if unknown:
        ap.error(f"unknown recipe {unknown}; choose from {keys}")
    base = ROOT / "outputs" / "results"
    dirs, walls = {}, {}
    times_path = base / "walls.json"
    if times_path.is_file():
        walls.update(json.loads(times_path.read_text()))
    for key, _, experiment, overrides in RECIPES:
        out = base / key
        if args.only is not None and key not in args.only:
            if (out / "cv" / "summary.json").is_file():
                dirs[key] = out
            continue
        if not (args.reuse and (out / "cv" / "summary.json").is_file()):
            walls[key] = run_ftlab(experiment, out, ["eval.cv.folds=5", *overrides])
            base.mkdir(parents=True, exist_ok=True)
            times_path.write_text(json.dumps(walls, indent=1))
        dirs[key] = out
    text = ("# The default task, selected without the eval split (`make results`)\n\n"
            "5-fold grouped, stratified CV on the 519 training rows (mean ± standard error over folds); "
            "Δ: the paired per-fold difference to the floor. Eval: 260 rows, the model trained on all "
            "of train. Wall: the whole experiment (CV, final training, base and tuned eval).\n\n"
            + table(dirs, walls))
    print(text)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
