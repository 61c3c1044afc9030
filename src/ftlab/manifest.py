"""Provenance of a run: hashes, versions, git state, seeds."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import platform
import subprocess
import sys
from typing import Any, Sequence

from ftlab.data import label_set_sha256
from ftlab.paths import project_root
from ftlab.tracking.redact import redact_argv

HOST_DISTS = ("ftlab", "hydra-core", "omegaconf", "pluggy", "mlflow", "numpy")
"""The host's own packages; a run adds its backend's package and the ``distributions`` it registered."""


def git_state() -> dict[str, Any]:
    root = project_root()

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    sha = git("rev-parse", "HEAD")
    return {"sha": sha or "unknown", "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def versions(extra: Sequence[str] = ()) -> dict[str, str]:
    """Installed versions of the host's packages and ``extra`` (those not installed are left out)."""
    out = {"python": platform.python_version()}
    for dist in dict.fromkeys((*HOST_DISTS, *extra)):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def build(config_yaml: str, splits: dict, prompt, labels, cfg, dists: Sequence[str] = ()) -> dict[str, Any]:
    """The manifest; ``dists``: the backend's package and the distributions it registered."""
    return {
        "config_sha256": hashlib.sha256(config_yaml.encode()).hexdigest(),
        "data": {name: {"path": str(s.path), "sha256": s.sha256, "rows": len(s.examples)}
                 for name, s in splits.items()},
        "prompt_sha256": prompt.sha256,
        "label_set_sha256": label_set_sha256(labels),
        "labels": list(labels),
        "seeds": {"run": cfg.seed, "train": cfg.train.seed, "bootstrap": cfg.eval.bootstrap_seed},
        "git": git_state(),
        "versions": versions(dists),
        # no host name (platform.node()): it is not needed to reproduce and may identify a site
        "platform": {"machine": platform.machine(), "system": platform.system()},
        "command": redact_argv(list(sys.argv)),
    }
