"""Fixtures for the extractive tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def plugins():
    """A fresh plugin manager (entry points loaded) installed as the process-wide one."""
    from ftlab.plugins import Plugins, set_plugins

    pm = Plugins(load_entry_points=True)
    set_plugins(pm)
    yield pm
    set_plugins(None)
