"""Reach inside a causal LM, wrapped by peft or not: the one place that unwraps it."""

from __future__ import annotations


def unwrap(model):
    """The causal LM itself (``LlamaForCausalLM`` and friends), unwrapped from peft."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder(model):
    """The decoder stack (``LlamaModel`` and friends) inside a causal LM or a peft wrapper."""
    return unwrap(model).model


def num_layers(model) -> int:
    return len(decoder(model).layers)


def split_layer(model, train_layers: int) -> int:
    """First trainable layer ``k``: the top ``train_layers`` are tuned (0 or too many: all)."""
    n = num_layers(model)
    return 0 if train_layers <= 0 or train_layers >= n else n - train_layers

