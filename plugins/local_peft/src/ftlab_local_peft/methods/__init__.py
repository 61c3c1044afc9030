"""Training methods: each a module that turns a training job into a :class:`~ftlab_local_peft.loop.Plan`.

A method module defines ``NAME`` and ``prepare(session, job) -> Plan``: it builds the trainable
model (a fresh adapter on ``session.base``), its training items and their lengths, the loss over a
batch of item indices, and what it saves beside the adapter. It never writes a loop: seeding,
batching, the optimizer, the schedule, checkpoints, progress, pruning reports, device and precision
belong to :mod:`ftlab_local_peft.loop`, the same for every method. A new method is a new file here
and one line in :data:`METHODS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

METHODS = {
    "lora": "ftlab_local_peft.methods.lora",
    "lora_cls": "ftlab_local_peft.methods.lora_cls",
}
"""``train.method`` → the module that implements it (``none`` trains nothing and has no module)."""


@dataclass
class Session:
    """What the backend hands a method: the loaded base model, its tokenizer and how to run it."""

    base: Any
    """The causal LM without an adapter (``LlamaForCausalLM`` and friends)."""
    tokenizer: Any
    cfg: Any
    """The run config (``cfg.train``, ``cfg.backend`` …)."""
    ctx: Any
    """The host's :class:`~ftlab.contract.RunContext`."""
    rt: Any
    """The :class:`~ftlab_local_peft.device.Runtime` (device, precision, progress)."""
    pad_id: int
    end_id: int
    features: Any
    """The process's :class:`~ftlab_local_peft.features.FeatureStore`."""


def get(name: str):
    """The module implementing ``train.method=name``."""
    if name not in METHODS:
        raise ValueError(f"local_peft supports train.method {', '.join(sorted(METHODS))} or none, not {name!r}")
    return importlib.import_module(METHODS[name])
