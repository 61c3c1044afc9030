"""ftlab: declarative fine-tuning and evaluation experiments for LLMs."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("ftlab")
"""Mark a plugin function as an implementation of an ftlab hook (see ftlab.hookspecs)."""

__all__ = ["hookimpl", "__version__"]
