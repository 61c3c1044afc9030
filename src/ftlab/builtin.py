"""The host's own default plugin: registered like any third-party plugin."""

from __future__ import annotations

from ftlab import hookimpl


@hookimpl
def ftlab_register_configs(store):
    """Nothing extra yet: the host's own groups live in conf/ and ftlab.config."""
