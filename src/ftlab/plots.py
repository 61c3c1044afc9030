"""Charts (matplotlib, Agg backend): confusion matrix, per-class F1, training loss, per-example deltas."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(cm: np.ndarray, labels: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix with full label names; last column = unparseable."""
    plt = _plt()
    cols = list(labels) + ["<unparseable>"]
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = max(6.0, 0.55 * len(cols) + 3)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), [f"{lab} ({int(r)})" for lab, r in zip(labels, rows[:, 0])],
                  fontsize=8)
    for i in range(norm.shape[0]):
        for j in range(norm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (support)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.04, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def f1_bars_png(labels: Sequence[str], series: Mapping[str, Sequence[float]], path: Path,
                title: str) -> Path:
    """Grouped horizontal bars: one group per label, one bar per series (e.g. base, tuned)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(labels) + 1.8))
    y = np.arange(len(labels))
    h = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.barh(y + i * h - 0.4 + h / 2, values, height=h, label=name)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_png(history: Sequence[Mapping[str, float]], path: Path) -> Path | None:
    """Training (and eval) loss per step; None when there is nothing to plot."""
    # backends may name the keys "loss" or "train/loss" (and "eval_loss" or "train/eval_loss")
    history = [{k.removeprefix("train/"): v for k, v in h.items()} for h in history]
    rows = [h for h in history if "loss" in h or "eval_loss" in h]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("loss", "eval_loss"):
        pts = [(h["step"], h[key]) for h in rows if key in h]
        if pts:
            ax.plot(*zip(*pts), marker="o" if key == "eval_loss" else None, label=key)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def histogram_png(values: Sequence[float], path: Path, title: str, xlabel: str) -> Path:
    """Histogram of per-example values (e.g. tuned-minus-base deltas), with a line at zero."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(list(values), bins=min(40, max(5, len(values) // 5)), color="#4878a8")
    ax.axvline(0, color="black", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("examples")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
