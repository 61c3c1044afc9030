"""The top-level run schema: one field per config group plus run-wide keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from omegaconf import MISSING

from ftlab.config.data import DataConfig
from ftlab.config.eval import EvalConfig
from ftlab.config.prompt import PromptConfig
from ftlab.config.sweep import SweepConfig
from ftlab.config.tracking import TrackingConfig
from ftlab.config.train import TrainConfig


class Stage(Enum):
    evaluate_base = "evaluate_base"  # predict + score with the untuned model
    cross_validate = "cross_validate"  # k-fold train + score on the training split (eval.cv)
    train = "train"  # tune the model
    evaluate_tuned = "evaluate_tuned"  # predict + score with the tuned model
    compare = "compare"  # paired base-vs-tuned statistics


DEFAULT_STAGES = (Stage.evaluate_base, Stage.train, Stage.evaluate_tuned, Stage.compare)
"""What a run does unless `stages` says otherwise; `eval.cv.folds` adds `cross_validate` (see `RunConfig.stage_order`)."""


@dataclass
class BackendConfig:
    """Fields every backend schema has; each backend extends this with its own options."""

    name: str = MISSING
    """Registered backend name (see `ftlab plugins`)."""


@dataclass
class RunConfig:
    """One experiment run."""

    experiment: str = "default"
    """Experiment name: MLflow experiment and output folder."""
    stages: List[Stage] = field(default_factory=lambda: list(DEFAULT_STAGES))
    """Stages to run, in this order. With `eval.cv.folds` >= 2, `cross_validate` runs too (after `evaluate_base`, before `train`) unless listed here explicitly; `stages=[cross_validate]` cross-validates only."""
    seed: int = 42
    """Global seed (Python, NumPy, torch)."""
    seeds: List[int] = field(default_factory=list)
    """Run the same config once per seed (a multirun; sets `seed` and `train.seed`); the sweep's parent run reports mean, std and 95% CI."""
    resume: Optional[str] = None
    """Resume an interrupted run: its output folder (re-attaches to remote jobs)."""
    backend: Any = MISSING
    """Where training and prediction run; schema chosen by `backend.name`."""
    model: Any = MISSING
    """The model to start from; schema chosen by `model.source` (a source a backend plugin registered)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Data splits and label set."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """Prompt template."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Tuning method and hyperparameters."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation settings."""
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    """MLflow settings."""
    sweep: SweepConfig = field(default_factory=SweepConfig)
    """Objective of sweeps and searches (docs/sweeps.md)."""

    def __post_init__(self) -> None:
        from ftlab.contain import safe_name

        safe_name(self.experiment, "experiment")  # a folder name: outputs/<experiment>/, multirun/…
        if Stage.cross_validate in self.stages and self.eval.cv.folds < 2:
            raise ValueError("stages include cross_validate but eval.cv.folds is "
                             f"{self.eval.cv.folds}: set eval.cv.folds=5 (or another k >= 2)")

    def stage_order(self) -> list[str]:
        """The stages this run executes: `stages`, with `cross_validate` placed before the first of
        train / evaluate_tuned / compare (else last) when `eval.cv.folds` >= 2 and it is not listed."""
        names = [s.value for s in self.stages]
        if self.eval.cv.folds < 2 or Stage.cross_validate.value in names:
            return names
        later = [i for i, n in enumerate(names) if n in ("train", "evaluate_tuned", "compare")]
        at = later[0] if later else len(names)
        return names[:at] + [Stage.cross_validate.value] + names[at:]
