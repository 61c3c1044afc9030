"""Test helpers for sweeps: a seed-sensitive fake backend, and a Hydra callback that registers the
fake backends inside launcher worker processes (joblib, Ray, submitit, device launcher)."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

from fake_backend import FakeBackend, FakeConfig, FakePlugin
from hydra.experimental.callback import Callback

from ftlab import hookimpl


@dataclass
class FakeSeededConfig(FakeConfig):
    """The fake backend, training on a seed-dependent 70% of the rows (so seeds differ)."""

    name: str = "fake_seeded"
    """Backend name."""


class FakeSeededBackend(FakeBackend):
    def train(self, job):
        rows = list(job.train)
        random.Random(self.cfg.train.seed).shuffle(rows)
        return super().train(dataclasses.replace(job, train=tuple(rows[: max(1, int(len(rows) * 0.7))])))


class FakeSeededPlugin:
    @hookimpl
    def ftlab_register_backends(self, register):
        register("fake_seeded", lambda cfg, ctx: FakeSeededBackend(cfg, ctx), FakeSeededConfig)


def register_fakes(plugins) -> list[str]:
    """Register both fake backends unless present; returns the names registered."""
    names = []
    for name, plugin in (("fake_backend_plugin", FakePlugin()), ("fake_seeded_plugin", FakeSeededPlugin())):
        if plugins.pm.get_plugin(name) is None:
            names.append(plugins.register(plugin, name=name))
    return names


class RegisterFakes(Callback):
    """``+hydra.callbacks.fakes._target_=sweep_helpers.RegisterFakes``: fakes in every worker."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        from ftlab.plugins import get_plugins

        register_fakes(get_plugins())
