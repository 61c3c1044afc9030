"""Cross-validation on the training split: the stage ``cross_validate`` (``eval.cv``).

Selection (a search, a recipe, a floor's settings) must never look at the split a run reports. This
stage gives every backend a number to select on that uses the training rows only: a stratified,
grouped k-fold (scikit-learn's ``StratifiedGroupKFold``: rows with the same input text share a
fold, so a transcript filed under two labels is never trained on and scored at once), one
:class:`~ftlab.contract.TrainJob` on the other folds and one ``predict`` on the held-out fold per
fold, scored by the same evaluator as any evaluation. A fold is an ordinary training job, so every
backend gets cross-validation without code of its own; ``TrainJob.repeat`` tells a backend that
more folds follow, so it may keep what does not depend on training (a local backend may keep its
frozen prompt states and document features).

MLflow keys (``<m>`` is each headline metric: ``macro_f1``, ``accuracy`` …, and ``lenient/<m>``):
``cv/fold_<i>/<m>`` per fold (1-based), ``cv/<m>_mean``, ``cv/<m>_std`` (sample std over folds),
``cv/<m>_stderr`` (std / sqrt(k)), ``cv/oof/<m>`` (every training row scored once, by the model
that did not train on it, pooled), ``cv/folds``. Files under ``<run>/cv/``: ``folds.json`` (row id →
fold), ``fold_<i>/`` (predictions and tables like any evaluation), ``oof/``, ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from ftlab.contract import Example, ModelRef, Predictions, TrainJob
from ftlab.paths import atomic_write_text

log = logging.getLogger("ftlab")

FOLD_FILE = "folds.json"


def assign_folds(examples: Sequence[Example], folds: int, seed: int, group_by: str) -> list[int]:
    """The fold (0-based) of every row: stratified by label, grouped by text unless ``group_by=none``.

    The same rows, ``folds``, ``seed`` and ``group_by`` give the same assignment whatever the backend
    or the rest of the config, so runs that differ in anything else are scored on identical folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if group_by == "text":
        index: dict[str, int] = {}
        groups = [index.setdefault(ex.text, len(index)) for ex in examples]
    elif group_by == "none":
        groups = list(range(len(examples)))
    else:
        raise ValueError(f"eval.cv.group_by must be text or none, not {group_by!r}")
    if len(set(groups)) < folds:
        raise ValueError(f"eval.cv.folds={folds}: the training split has only {len(set(groups))} "
                         f"distinct {'texts' if group_by == 'text' else 'rows'}")
    out = [0] * len(examples)
    with warnings.catch_warnings():  # rare classes with fewer rows than folds are expected, not an error
        warnings.filterwarnings("ignore", message="The least populated class")
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        for k, (_, held) in enumerate(splitter.split(examples, [ex.label for ex in examples], groups)):
            for i in held:
                out[i] = k
    return out


def summarize(per_fold: Sequence[dict[str, float]]) -> dict[str, float]:
    """``<m>_mean``, ``<m>_std`` (n-1) and ``<m>_stderr`` of each metric over the folds."""
    out: dict[str, float] = {}
    for key in per_fold[0]:
        vals = [f[key] for f in per_fold if key in f and not math.isnan(f[key])]
        n = len(vals)
        mean = sum(vals) / n if n else math.nan
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else math.nan
        out.update({f"{key}_mean": mean, f"{key}_std": std,
                    f"{key}_stderr": std / math.sqrt(n) if n > 1 else math.nan})
    return out


@dataclasses.dataclass
class CVResult:
    per_fold: list[dict[str, float]]
    summary: dict[str, float]
    oof: dict[str, float]
    """The pooled out-of-fold headline values (every training row scored once)."""
    seconds: float

    def metrics(self) -> dict[str, float]:
        out = {f"cv/fold_{i}/{k}": v for i, f in enumerate(self.per_fold, 1) for k, v in f.items()}
        out.update({f"cv/{k}": v for k, v in self.summary.items() if not math.isnan(v)})
        out.update({f"cv/oof/{k}": v for k, v in self.oof.items()})
        out["cv/folds"] = float(len(self.per_fold))
        return out


class CrossValidation:
    """Runs the stage for one :class:`ftlab.runner.Run` (its backend, data, prompt, tracker, state)."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.cfg = run.cfg.eval.cv
        self.dir = Path(run.run_dir) / "cv"

    def _folds(self, examples: Sequence[Example]) -> list[int]:
        cv = self.cfg
        folds = assign_folds(examples, cv.folds, cv.seed, getattr(cv.group_by, "value", cv.group_by))
        path = self.dir / FOLD_FILE
        record = {"folds": cv.folds, "seed": cv.seed, "group_by": getattr(cv.group_by, "value", cv.group_by),
                  "assignment": {ex.id: k + 1 for ex, k in zip(examples, folds)}}
        if path.is_file() and json.loads(path.read_text()) != record:
            raise RuntimeError(f"{path} records other folds than this config and data give; a resumed "
                               f"cross-validation must keep its folds (start a new run instead)")
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=1))
        return folds

    def execute(self) -> CVResult:
        from ftlab.config.compose import decoding_for

        run, t0 = self.run, time.perf_counter()
        examples = run.splits["train"].examples
        folds = self._folds(examples)
        run.tracker.log_artifact(self.dir / FOLD_FILE, "cv")
        done = run.state.setdefault("cv_folds_done", [])
        decoding = decoding_for(run.cfg, run.fallbacks)
        preds_by_id: dict[str, Any] = {}
        per_fold: list[dict[str, float]] = []
        for k in range(self.cfg.folds):
            name = f"fold_{k + 1}"
            held = tuple(ex for ex, f in zip(examples, folds) if f == k)
            rest = tuple(ex for ex, f in zip(examples, folds) if f != k)
            out = self.dir / name
            if k + 1 in done and (out / "predictions.jsonl").is_file():
                from ftlab.runner import load_predictions

                preds = load_predictions(out / "predictions.jsonl", ModelRef(run.cfg.backend.name, "tuned"))
                facts: dict[str, float] = {}
                log.info("resume: cross-validation %s read back from %s", name, out)
            else:
                preds, facts = self._fold(k, name, rest, held, decoding)
            scored = run.scorer.score("cv", name, held, preds)
            run.scorer.write_files(scored, held, out)
            run.tracker.log_artifact(out, "cv")  # one upload per fold: its predictions, tables, history
            per_fold.append(run.scorer.headline(scored))
            run.tracker.log_metrics({**facts, **{f"cv/{name}/{m}": v for m, v in per_fold[-1].items()}})
            preds_by_id.update({p.id: p for p in scored.items})
            if k + 1 not in done:
                done.append(k + 1)
            run._save_state()
        oof_preds = Predictions(model=ModelRef(run.cfg.backend.name, "tuned"),
                                items=tuple(preds_by_id[ex.id] for ex in examples))
        oof = run.scorer.score("cv", "oof", examples, oof_preds)
        run.scorer.write_files(oof, examples, self.dir / "oof")
        run.tracker.log_artifact(self.dir / "oof", "cv")
        result = CVResult(per_fold, summarize(per_fold), run.scorer.headline(oof), time.perf_counter() - t0)
        run.tracker.log_metrics({**result.metrics(), "time/cv_s": result.seconds})
        atomic_write_text(self.dir / "summary.json", json.dumps(result.metrics(), indent=1, sort_keys=True))
        run.tracker.log_artifact(self.dir / "summary.json", "cv")
        return result

    def _fold(self, k: int, name: str, rest, held, decoding) -> tuple[Predictions, dict[str, float]]:
        """Train on ``rest`` (a repeat job: more folds follow) and predict ``held``: the predictions
        and the fold's facts to log. The backend's curves go under ``cv/<fold>/``, its search
        reports are muted."""
        run = self.run
        out = self.dir / name
        train_dir = out / "train"
        train_dir.mkdir(parents=True, exist_ok=True)
        log.info("cross-validation %s of %d: train on %d rows, score %d", name, self.cfg.folds, len(rest),
                 len(held))
        t0 = time.perf_counter()
        with _scoped(run.ctx, f"cv/{name}/"):
            trained = run.backend.train(TrainJob(train=rest, eval=held, prompt=run.prompt, out_dir=train_dir,
                                                 repeat=True))
            preds = run.backend.predict(trained.model, held, run.prompt, decoding)
        facts = {f"cv/{name}/{m}": v for m, v in {**trained.metrics, **preds.metrics}.items()}
        facts[f"time/cv_{name}_s"] = time.perf_counter() - t0
        atomic_write_text(out / "history.json", json.dumps(list(trained.history), indent=1))
        if trained.model.kind == "tuned":  # the fold's model has done its work: its rows are scored
            shutil.rmtree(train_dir, ignore_errors=True)
        return preds, facts


class _scoped:
    """Within a fold: the backend's metrics get a key prefix and its search reports are muted (a
    fold's epochs are not the trial's)."""

    def __init__(self, ctx: Any, prefix: str) -> None:
        self.ctx, self.prefix = ctx, prefix

    def __enter__(self):
        c, prefix = self.ctx, self.prefix
        self.saved = (c.log_metrics, c.report)
        log_metrics: Callable = c.log_metrics
        c.log_metrics = lambda m, step=None: log_metrics({prefix + k: v for k, v in m.items()}, step)
        c.report = lambda values, step: None
        return c

    def __exit__(self, *exc) -> None:
        self.ctx.log_metrics, self.ctx.report = self.saved
