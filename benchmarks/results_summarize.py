"""The summarization experiment's published numbers (``make results-summarize``; issue 18).

Runs ``ftlab +experiment=mtsamples_summarize seed=N train.seed=N`` for each seed (the two keys
``seeds=[…]`` sets; base evaluation, generative LoRA SFT, tuned evaluation, paired comparison: the
shipped experiment, unchanged) and the extractive floor
``ftlab +experiment=mtsamples_summarize_extractive`` once, all on the eval split, each into its own
folder under ``outputs/results_summarize/``. Prints and writes ``benchmarks/results_summarize.md``:
per seed the base and tuned corpus values, tuned − base and tuned − floor with a paired bootstrap
interval over the same rows (ROUGE F1s are means of per-example scores, so the interval resamples
those), each run's wall time; and the mean over seeds. The experiment's settings were chosen on
``dev.jsonl`` (docs/results.md); nothing here is selected, only reported.

    python benchmarks/results_summarize.py [--seeds 1 2 3] [--reuse] [--output FILE]

``--reuse`` reads run folders an earlier call left instead of re-running them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _common import run_ftlab  # this folder

from ftlab.metrics.compare_text import mean_delta_interval

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "outputs" / "results_summarize"
EXPERIMENT, FLOOR = "mtsamples_summarize", "mtsamples_summarize_extractive"
KEYS = ("rougeL_f1", "rouge1_f1", "rouge2_f1", "rougeLsum_f1")
"""Means of per-example F1 (rouge-score's own aggregation): the paired bootstrap resamples those."""
CORPUS = ("bleu4", "chrf")
"""Corpus metrics reported as they are (their intervals are in each run's own comparison)."""
COLUMNS = (*KEYS, *CORPUS)


def per_example(run_dir: Path, stage: str) -> tuple[list[str], dict[str, np.ndarray], dict[str, float]]:
    """Row ids, per-example scores per key and the corpus values of one stage's eval predictions."""
    folder = run_dir / "eval" / stage / "eval"
    rows = [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]
    corpus = json.loads((folder / "metrics.json").read_text())
    corpus = {k.rsplit("/", 1)[1]: v for k, v in corpus.items()}
    scores = {k: np.array([r["metrics"][k] for r in rows]) for k in KEYS}
    for k in KEYS:  # the interval below is only right if the corpus value is the mean of the rows'
        if abs(scores[k].mean() - corpus[k]) > 1e-9:
            raise RuntimeError(f"{folder}: {k} corpus {corpus[k]} is not the mean of its rows")
    return [r["id"] for r in rows], scores, corpus


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--reuse", action="store_true", help="read outputs/results_summarize/* instead of running")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results_summarize.md")
    args = ap.parse_args(argv)
    walls_path = BASE / "walls.json"
    walls = json.loads(walls_path.read_text()) if walls_path.is_file() else {}
    jobs = [("floor", FLOOR, [])] + [(f"seed_{s}", EXPERIMENT, [f"seed={s}", f"train.seed={s}"]) for s in args.seeds]
    for key, experiment, overrides in jobs:
        done = (BASE / key / "eval" / "tuned" / "eval" / "metrics.json").is_file()
        if not (args.reuse and done):
            walls[key] = run_ftlab(experiment, BASE / key, overrides)
            walls_path.parent.mkdir(parents=True, exist_ok=True)
            walls_path.write_text(json.dumps(walls, indent=1))
    floor_ids, floor, floor_corpus = per_example(BASE / "floor", "tuned")  # its "tuned" stage: k chosen on train
    lines = ["| run | " + " | ".join(COLUMNS)
             + " | ROUGE-L F1 tuned − base [95% CI] | tuned − floor [95% CI] | wall |",
             "|---" * (len(COLUMNS) + 4) + "|",
             "| extractive floor (lead-k words, k chosen on train) | "
             + " | ".join(f"{floor_corpus[k]:.3f}" for k in COLUMNS) + " | | | "
             + (f"{walls['floor'] / 60:.1f} min" if "floor" in walls else "-") + " |"]
    tuned_vals, deltas = [], []
    for s in args.seeds:
        key = f"seed_{s}"
        ids_b, base, base_corpus = per_example(BASE / key, "base")
        ids_t, tuned, tuned_corpus = per_example(BASE / key, "tuned")
        if not ids_b == ids_t == floor_ids:
            raise RuntimeError(f"{key}: the runs did not score the same rows in the same order")
        if s == args.seeds[0]:
            lines.append("| base model (untuned) | " + " | ".join(f"{base_corpus[k]:.3f}" for k in COLUMNS)
                         + " | | | |")
        vb, lb, hb = mean_delta_interval(base["rougeL_f1"], tuned["rougeL_f1"])
        vf, lf, hf = mean_delta_interval(floor["rougeL_f1"], tuned["rougeL_f1"])
        tuned_vals.append([tuned_corpus[k] for k in COLUMNS])
        deltas.append((vb, vf))
        lines.append(f"| tuned, seed {s} | " + " | ".join(f"{tuned_corpus[k]:.3f}" for k in COLUMNS)
                     + f" | {vb:+.3f} [{lb:+.3f}, {hb:+.3f}] | {vf:+.3f} [{lf:+.3f}, {hf:+.3f}] | "
                     + (f"{walls[key] / 60:.1f} min" if key in walls else "-") + " |")
    m = np.mean(tuned_vals, 0)
    sd = np.std(tuned_vals, 0, ddof=1) if len(tuned_vals) > 1 else np.zeros(len(COLUMNS))
    d = np.mean(deltas, 0)
    lines.append(f"| **tuned, mean ± std of {len(args.seeds)} seeds** | "
                 + " | ".join(f"**{a:.3f}** ± {b:.3f}" for a, b in zip(m, sd))
                 + f" | {d[0]:+.3f} | {d[1]:+.3f} | |")
    text = ("# Summarization, base vs tuned vs the extractive floor (`make results-summarize`)\n\n"
            f"`mtsamples_summarize` on the {len(floor_ids)} eval rows (SmolLM2-135M-Instruct, generative LoRA "
            "SFT), seeds " + ", ".join(map(str, args.seeds)) + "; ROUGE with rouge-score (stemmer on), BLEU-4 "
            "as BigQuery's bleu4, chrF by sacrebleu. Intervals: 1000 paired bootstrap resamples of the "
            "rows. Wall: the whole experiment (model load, base and tuned evaluation, training).\n\n"
            + "\n".join(lines) + "\n")
    print(text)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
