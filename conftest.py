"""Repo-wide pytest options: opt-in tiers (slow, tpu, remote) for host and plugin tests; ``gpu`` tests run
wherever torch sees a CUDA device and are skipped only where it sees none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
"""The project root. Also defined here (not only in tests/conftest.py) because a worker process of a
sweep launcher (Ray, submitit) that unpickles a test module resolves ``import conftest`` to this
file: a full-suite run then failed with ``cannot import name 'ROOT' from 'conftest'``."""


def mlflow_client():
    """The same helper as tests/conftest.py's, for the same reason as ``ROOT``."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


TIERS = ("slow", "gpu", "tpu", "remote")


def pytest_addoption(parser):
    for flag in TIERS:
        parser.addoption(f"--run-{flag}", action="store_true", help=f"run tests marked {flag}")


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (torch is imported only when a ``gpu`` test was collected)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    gpu = [item for item in items if "gpu" in item.keywords]
    if gpu and not cuda_available():  # skipped only where there is no CUDA device, never by default
        marker = pytest.mark.skip(reason="needs a CUDA device: torch.cuda.is_available() is False")
        for item in gpu:
            item.add_marker(marker)
    for flag in TIERS:
        if flag == "gpu":  # runs whenever a CUDA device is present (--run-gpu is accepted, not needed)
            continue
        if config.getoption(f"--run-{flag}") or os.environ.get(f"FTLAB_RUN_{flag.upper()}"):
            continue
        marker = pytest.mark.skip(reason=f"opt-in tier: pass --run-{flag} or set FTLAB_RUN_{flag.upper()}=1")
        for item in items:
            if flag in item.keywords:
                item.add_marker(marker)
