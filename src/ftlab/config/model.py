"""Schema of the ``model`` group: what every model config has. Sources belong to the backends.

The host knows a model by ``name`` and ``source`` only. Each backend plugin registers the sources it
can load, one dataclass each (a subclass of :class:`ModelConfig` with the source's own keys), through
``ftlab_register_configs``: ``store("model_source", "<source>", Schema)``. A file in ``conf/model/``
extends the schema of its source through its defaults list, so a typo in it or in an override
fails by name when Hydra composes::

    defaults:
      - /model_source/<source>@_here_
      - _self_

A model node that names no schema (a run's saved config, a third-party file) is typed by its
``source`` when the config is validated. ``ftlab plugins`` lists the registered sources.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

MODEL_SOURCE_GROUP = "model_source"
"""ConfigStore group of the model schemas that plugins register, one per source name."""


@dataclass
class ModelConfig:
    """Which model to start from; a source's schema (registered by a backend plugin) adds its keys."""

    name: str = MISSING
    """Short name, used in run names and MLflow params."""
    source: str = MISSING
    """Where the weights come from: a source a plugin registered (`ftlab plugins` lists them with their keys)."""
