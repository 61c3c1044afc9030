"""From ftlab's ``train.*`` keys and ``eval.task`` to the tuning ``CREATE MODEL`` OPTIONS and ML.EVALUATE's task.

How each honoured key maps is declared once, in ``plugin.CAPABILITIES.train_keys`` (``ftlab plugins``
prints it; any other key set is reported unused by the host). The rules, from the BigQuery ML
reference for supervised tuning of Gemini models:

- ``MAX_ITERATIONS`` is converted to epochs by the service, one epoch being the number of input rows,
  and a value that is not a whole number of epochs is rounded *up*. ftlab therefore sends whole epochs
  (``ceil(train.epochs) x rows``, or ``train.max_steps`` rounded up to whole epochs), so the SQL says
  what runs; ``backend.max_iterations`` is sent as given and the epochs it means are recorded.
- ``LEARNING_RATE_MULTIPLIER`` multiplies a recommended rate the service does not publish; ftlab's
  default ``train.learning_rate`` stands for it, so a run (or a sweep) that scales the rate scales the
  multiplier alike.
- ``DATA_SPLIT_METHOD`` / ``DATA_SPLIT_EVAL_FRACTION``: ``train.holdout_fraction`` > 0 holds out that
  fraction of the training rows (``RANDOM``, two decimals kept by the service); 0 = ``NO_SPLIT``.
- ``EVALUATION_TASK`` and ML.EVALUATE's ``task_type`` are ``eval.task``'s BigQuery name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ftlab_bqml import validate as v


@dataclass(frozen=True)
class TuningPlan:
    """What a run's config says about tuning, resolved once (before any statement is sent)."""

    learning_rate_multiplier: float
    data_split_method: str
    data_split_eval_fraction: Optional[float]
    evaluation_task: str
    """EVALUATION_TASK of the tuning CREATE MODEL."""
    task_type: str
    """ML.EVALUATE's task_type: always eval.task's BigQuery name."""
    notes: tuple[str, ...] = ()
    """How config keys were mapped where that is not obvious (printed when tuning starts)."""


def task_type(run_cfg) -> str:
    """The BigQuery ML name of ``eval.task`` (``CLASSIFICATION`` when the config has no eval group)."""
    name = getattr(getattr(run_cfg, "eval", None), "task", None) or "classification"
    from ftlab.plugins import get_plugins

    task = get_plugins().task(name)
    if not task.bigquery:
        raise v.BqmlConfigError(f"eval.task={name} has no BigQuery ML task type; bqml evaluates "
                                f"{', '.join(v.TASK_TYPES)}")
    return v.check_choice("evaluation_task", task.bigquery, v.TASK_TYPES)


def plan(run_cfg) -> TuningPlan:
    """Resolve the tuning options of ``run_cfg`` (its ``backend``, ``train`` and ``eval`` groups).

    A backend key that contradicts the ``train.*``/``eval.*`` key it overrides is an error naming both."""
    from ftlab.config.train import TrainConfig

    b = run_cfg.backend
    train = getattr(run_cfg, "train", None) or TrainConfig()
    notes = []
    tt = task_type(run_cfg)
    task = b.evaluation_task or tt
    if task not in (tt, "UNSPECIFIED"):
        raise v.BqmlConfigError(f"backend.evaluation_task={task} contradicts eval.task={run_cfg.eval.task} "
                                f"(BigQuery ML task {tt}); leave backend.evaluation_task unset, or UNSPECIFIED")
    multiplier = b.learning_rate_multiplier
    if multiplier is None:
        reference = TrainConfig.learning_rate
        multiplier = float(train.learning_rate) / reference
        if multiplier != 1.0:
            notes.append(f"train.learning_rate={train.learning_rate:g} → LEARNING_RATE_MULTIPLIER "
                         f"{multiplier:g} (ftlab's default {reference:g} = the service's recommended rate)")
    holdout = float(getattr(train, "holdout_fraction", 0.0) or 0.0)
    method, fraction = b.data_split_method, b.data_split_eval_fraction
    if method is None:
        method = "RANDOM" if holdout > 0 else "NO_SPLIT"
    elif holdout > 0 and method != "RANDOM":
        raise v.BqmlConfigError(f"train.holdout_fraction={holdout:g} asks for a held-out part of the training "
                                f"split, but backend.data_split_method={method}; use RANDOM or leave it unset")
    if fraction is None and holdout > 0:
        fraction = round(holdout, 2)
        if fraction != holdout:
            notes.append(f"train.holdout_fraction={holdout:g} → DATA_SPLIT_EVAL_FRACTION {fraction:g} "
                         "(the service keeps two decimals)")
        if not 0 < fraction < 1:
            raise v.BqmlConfigError(f"train.holdout_fraction={holdout:g} rounds to {fraction:g}, which holds out "
                                    "nothing or everything (the service keeps two decimals)")
    return TuningPlan(learning_rate_multiplier=float(multiplier), data_split_method=method,
                      data_split_eval_fraction=fraction, evaluation_task=task, task_type=tt, notes=tuple(notes))


def iterations(backend_cfg, train_cfg, n_rows: int) -> tuple[int, int, Optional[str]]:
    """``(MAX_ITERATIONS, whole epochs it means, a note or None)`` for ``n_rows`` training rows.

    One epoch is ``n_rows`` iterations; the service rounds a partial epoch up, so a value derived from
    ``train.*`` is sent already rounded to whole epochs and the note says when that changed it."""
    n = max(1, int(n_rows))
    if backend_cfg.max_iterations is not None:
        steps = int(backend_cfg.max_iterations)
        return steps, math.ceil(steps / n), None
    max_steps = int(getattr(train_cfg, "max_steps", -1) or -1)
    if max_steps > 0:
        epochs, asked = math.ceil(max_steps / n), f"train.max_steps={max_steps}"
    else:
        wanted = float(getattr(train_cfg, "epochs", 1.0) or 1.0)
        epochs, asked = max(1, math.ceil(wanted - 1e-9)), f"train.epochs={wanted:g}"
        if epochs == wanted:
            return epochs * n, epochs, None
    note = (f"{asked} → MAX_ITERATIONS {epochs * n} = {epochs} whole epoch(s) of {n} rows "
            "(the service tunes whole epochs, rounding up)")
    return epochs * n, epochs, None if max_steps > 0 and epochs * n == max_steps else note
