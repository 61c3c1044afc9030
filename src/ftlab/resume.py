"""What ``resume=<run folder>`` must find unchanged before it reuses anything the folder holds.

A resumed run reads back finished stages (predictions, the tuned model) and continues the same
MLflow run, so its config must be the one the run began with, and its inputs (data files, the
prompt, the label set, a model file) must still hash as the manifest recorded. Otherwise the folder,
the MLflow params and the metrics would describe different runs. Only keys that cannot change a
result may differ: :data:`MAY_CHANGE` (where and how the run is tracked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAY_CHANGE = ("tracking.", "resume")
"""Dotted keys (a prefix ending in ``.`` covers a group) that a resume may set differently."""


def _flat(yaml_text: str) -> dict[str, str]:
    from omegaconf import OmegaConf

    from ftlab.tracking.mlflow_tracker import flatten

    return flatten(OmegaConf.to_container(OmegaConf.create(yaml_text)))


def _may_change(key: str) -> bool:
    return any(key.startswith(p) if p.endswith(".") else key == p for p in MAY_CHANGE)


def config_changes(recorded_yaml: str, new_yaml: str) -> list[str]:
    """``train.lora.r: 16 -> 8`` for every key that differs and may not (both texts as the run folder's
    ``config.yaml`` records them: resolved, secrets masked)."""
    old, new = _flat(recorded_yaml), _flat(new_yaml)
    return [f"{k}: {old.get(k, '(unset)')} -> {new.get(k, '(unset)')}"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k) and not _may_change(k)]


def problems(run_dir: Path, new_yaml: str, cfg: Any) -> list[str]:
    """Why ``run_dir`` cannot be resumed with ``cfg`` (empty: it can)."""
    from ftlab.replay import drift

    out = [f"config {c}" for c in config_changes((run_dir / "config.yaml").read_text(encoding="utf-8"),
                                                  new_yaml)]
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        return out + [f"manifest.json is not valid JSON ({exc})"]
    return out + drift(manifest, cfg)


def refusal(run_dir: Path, found: list[str]) -> str:
    """The error a refused resume prints: every difference, and the command the run began with."""
    try:
        command = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")).get("command")
    except ValueError:
        command = None
    began = f"; it began as: {' '.join(command)} (add resume={run_dir})" if isinstance(command, list) else ""
    return (f"resume={run_dir}: refusing to continue a run whose config or inputs changed (its folder, "
            f"MLflow params and metrics would describe different runs):\n  " + "\n  ".join(found)
            + f"\nOnly {', '.join(MAY_CHANGE)} may differ. Resume with the run's own settings{began}, "
            f"or start a new run.")
