"""Schema of the ``sweep`` group: what a multirun optimises and how its parent run ranks the jobs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional


class Direction(Enum):
    maximize = "maximize"  # higher objective is better (F1, accuracy)
    minimize = "minimize"  # lower objective is better (loss, cost)


@dataclass
class SweepConfig:
    """Objective of a sweep or search; single runs use it only for the value they return."""

    objective: Optional[str] = None
    """MLflow metric key to rank and optimise, e.g. `eval/tuned/eval/macro_f1`; null = macro-F1 of the last evaluated stage on the first eval split."""
    direction: Direction = Direction.maximize
    """Whether a higher (`maximize`) or lower (`minimize`) objective is better."""
