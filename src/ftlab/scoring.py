"""One scorer per run: the task decides how predictions are scored, logged, written and compared.

The runner, the cross-validation and the closing summary call a :class:`Scorer` and never ask
which task it is: a classification run scores with :mod:`ftlab.evaluate` (parsed labels, strict and
lenient reports), a generation run with :mod:`ftlab.evaluate_text` (the task's registered text
metrics). Both give a ``headline()`` dict of metric keys, which is what cross-validation averages,
the objective reads and the closing table leads with.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

from ftlab import evaluate as ev
from ftlab import evaluate_text as evt
from ftlab import plots
from ftlab.contract import Example, Predictions
from ftlab.paths import atomic_open, atomic_write_text

EXAMPLES_TABLE = "examples.json"
"""A generation task's paired comparison writes every example side by side here (``compare/<split>/``),
in the JSON layout of ``mlflow.log_table`` (``{"columns": [...], "data": [[...], ...]}``), so the
MLflow UI shows it as a table and ``ftlab report`` samples it."""
TABLES = (EXAMPLES_TABLE,)
"""File names the runner logs as MLflow tables (tagged ``mlflow.loggedArtifacts``)."""
INPUT_EXCERPT_CHARS = 400
"""The examples table keeps this many characters of each input (the full text is in the data file)."""


class Scorer:
    def __init__(self, task: Any, metrics: Sequence[Any], prompt: Any, eval_cfg: Any) -> None:
        self.task, self.metrics, self.prompt, self.cfg = task, tuple(metrics), prompt, eval_cfg

    @classmethod
    def for_run(cls, cfg: Any, plugins: Any, prompt: Any) -> "Scorer":
        task = plugins.task(cfg.eval.task)
        names = list(cfg.eval.metrics) or list(task.metrics)
        return cls(task, [plugins.metric(n) for n in names] if task.generative else [], prompt, cfg.eval)

    @property
    def generative(self) -> bool:
        return bool(self.task.generative)

    def score(self, stage: str, split: str, examples: Sequence[Example], preds: Predictions):
        if self.generative:
            return evt.score_text(stage, split, examples, preds, self.metrics)
        return ev.score(stage, split, examples, preds, self.prompt, self.cfg.lenient)

    def metric_dict(self, scored) -> dict[str, float]:
        return evt.metric_dict(scored) if self.generative else ev.metric_dict(scored, self.prompt.labels)

    def write_files(self, scored, examples: Sequence[Example], out: Path) -> list[Path]:
        if self.generative:
            return evt.write_files(scored, examples, out)
        return ev.write_files(scored, examples, self.prompt.labels, out)

    def headline(self, scored) -> dict[str, float]:
        """Every headline value of ``scored``: strict ones by name, lenient ones under ``lenient/``
        (classification), or each corpus metric and output fact (generation)."""
        if self.generative:
            return scored.headline()
        out = dict(scored.strict.headline())
        if scored.lenient is not None:
            out.update({f"lenient/{k}": v for k, v in scored.lenient.headline().items()})
        return out

    @property
    def objective_key(self) -> str:
        """The metric a run returns by default: the task's first headline key."""
        return self.task.headline[0]

    def compare(self, base, tuned, split: str, out: Path) -> tuple[dict[str, float], Any, list[Path]]:
        """The paired comparison of ``base`` and ``tuned`` on ``split``: (metrics to log under
        ``compare/<split>/``, the comparison object, files written under ``out``)."""
        out.mkdir(parents=True, exist_ok=True)
        c = self.cfg
        if self.generative:
            from ftlab.metrics.compare_text import paired_compare_text

            keys = [k for k in self.task.headline if k in base.stats] or list(base.stats)
            comps = paired_compare_text(base, tuned, keys, c.bootstrap_samples, c.bootstrap_seed, c.confidence)
            metrics = {k: v for cmp in comps.values() for k, v in cmp.metrics().items()}
            atomic_write_text(out / "comparison.json",
                              json.dumps({k: v.to_json() for k, v in comps.items()}, indent=1))
            return metrics, comps, [out / "comparison.json", *self._delta_files(base, tuned, keys[0], out)]
        from ftlab.metrics.compare import paired_compare

        labels = self.prompt.labels
        cmp = paired_compare(base.y_true, base.y_pred, tuned.y_pred, labels, c.bootstrap_samples,
                             c.bootstrap_seed, c.confidence)
        metrics = cmp.metrics()
        if base.lenient and tuned.lenient:
            metrics["lenient_macro_f1_delta"] = tuned.lenient.macro_f1 - base.lenient.macro_f1
        path = out / "per_class_delta.csv"
        with atomic_open(path, newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["label", "support", "base_f1", "tuned_f1", "delta"])
            for lab in labels:
                b, t = base.strict.per_class[lab], tuned.strict.per_class[lab]
                w.writerow([lab, b.support, f"{b.f1:.6f}", f"{t.f1:.6f}", f"{t.f1 - b.f1:+.6f}"])
        atomic_write_text(out / "comparison.json", json.dumps(cmp.__dict__, indent=1))
        png = plots.f1_bars_png(labels, {"base": [base.strict.per_class[x].f1 for x in labels],
                                         "tuned": [tuned.strict.per_class[x].f1 for x in labels]},
                                out / "per_class_f1.png", f"per-class F1 on {split}: base vs tuned")
        return metrics, cmp, [path, out / "comparison.json", png]

    def _delta_files(self, base, tuned, key: str, out: Path) -> list[Path]:
        """Per-example base, tuned and delta of ``key``: a CSV, the examples table (input excerpt,
        references, both outputs, both scores) and a histogram of the deltas."""
        path = out / "per_example_delta.csv"
        deltas, data = [], []
        with atomic_open(path, newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", f"base_{key}", f"tuned_{key}", "delta"])
            for i, (p, a, b) in enumerate(zip(base.items, base.per_example, tuned.per_example)):
                d = b.get(key, 0.0) - a.get(key, 0.0)
                deltas.append(d)
                w.writerow([p.id, f"{a.get(key, 0.0):.6f}", f"{b.get(key, 0.0):.6f}", f"{d:+.6f}"])
                text = base.inputs[i] if i < len(base.inputs) else ""
                data.append([p.id, text[:INPUT_EXCERPT_CHARS] + ("…" if len(text) > INPUT_EXCERPT_CHARS else ""),
                             " | ".join(base.references[i]), p.raw_text, tuned.items[i].raw_text,
                             a.get(key, 0.0), b.get(key, 0.0), d])
        table = out / EXAMPLES_TABLE
        atomic_write_text(table, json.dumps({"columns": ["id", "input", "reference", "base_output", "tuned_output",
                                                         f"base_{key}", f"tuned_{key}", "delta"],
                                             "data": data}, ensure_ascii=False))
        png = plots.histogram_png(deltas, out / "per_example_delta.png",
                                  f"per-example {key}: tuned minus base", f"{key} delta")
        return [path, table, png]
