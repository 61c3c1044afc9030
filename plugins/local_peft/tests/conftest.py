"""Fixtures for the local_peft tests (helpers live in local_peft_helpers.py, a unique module name)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent))  # append: never shadow the host tests' conftest

from local_peft_helpers import Trained  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model tuned once per test module."""
    return Trained(tmp_path_factory.mktemp("trained"))
