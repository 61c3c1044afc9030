"""Per-class loss weights (``train.class_weighting``), shared by every classification method."""

from __future__ import annotations

from typing import Sequence

import torch


def class_weights(targets: torch.Tensor, scheme: str) -> torch.Tensor:
    """Per-class loss weights from ``[n, C]`` target rows: none (1), sqrt or balanced inverse frequency.

    ``balanced`` is ``n / (C * count)`` as in scikit-learn; ``sqrt`` its square root (milder for the
    2-row classes). A class absent from the training data gets weight 1.
    """
    c = targets.shape[1]
    count = targets.sum(0)
    if scheme == "none":
        return torch.ones(c)
    w = torch.where(count > 0, targets.shape[0] / (c * count.clamp(min=1e-9)), torch.ones(c))
    if scheme == "sqrt":
        return w.sqrt()
    if scheme == "balanced":
        return w
    raise ValueError(f"train.class_weighting must be none, sqrt or balanced, not {scheme!r}")


def example_weights(examples, labels: Sequence[str], scheme: str) -> list[float]:
    """Per training row, the weight of its label under ``train.class_weighting`` (mean 1 over rows)."""
    if scheme == "none":  # also every generation task: there are no classes
        return [1.0] * len(examples)
    idx = {lab: i for i, lab in enumerate(labels)}
    onehot = torch.zeros((len(examples), len(labels)))
    for r, ex in enumerate(examples):
        onehot[r, idx[ex.label]] = 1
    w = class_weights(onehot, scheme)[[idx[ex.label] for ex in examples]]
    return (w / w.mean()).tolist()
