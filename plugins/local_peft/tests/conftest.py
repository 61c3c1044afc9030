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


@pytest.fixture(autouse=True, scope="session")
def _own_cache_dir(tmp_path_factory):
    """The dtype probe and the dequantised-model cache write under $FTLAB_CACHE_DIR: never the user's."""
    import os

    old = os.environ.get("FTLAB_CACHE_DIR")
    os.environ["FTLAB_CACHE_DIR"] = str(tmp_path_factory.mktemp("ftlab_cache"))
    yield
    if old is None:
        os.environ.pop("FTLAB_CACHE_DIR", None)
    else:
        os.environ["FTLAB_CACHE_DIR"] = old
