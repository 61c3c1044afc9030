"""Repo-wide pytest options: opt-in tiers (slow, gpu, tpu, remote) for host and plugin tests."""

from __future__ import annotations

import os

import pytest

TIERS = ("slow", "gpu", "tpu", "remote")


def pytest_addoption(parser):
    for flag in TIERS:
        parser.addoption(f"--run-{flag}", action="store_true", help=f"run tests marked {flag}")


def pytest_collection_modifyitems(config, items):
    for flag in TIERS:
        if config.getoption(f"--run-{flag}") or os.environ.get(f"FTLAB_RUN_{flag.upper()}"):
            continue
        marker = pytest.mark.skip(reason=f"opt-in tier: pass --run-{flag} or set FTLAB_RUN_{flag.upper()}=1")
        for item in items:
            if flag in item.keywords:
                item.add_marker(marker)
