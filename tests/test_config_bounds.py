"""Values that cannot be right are refused by the schema's declared ranges, naming the dotted key."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from ftlab.config.compose import ConfigError, compose, validate


@pytest.mark.parametrize("overrides,message", [
    (["train.epochs=-1"], "train.epochs must be > 0 (got -1.0)"),
    (["train.epochs=-1", "train.max_steps=10"], "train.epochs must be > 0 (got -1.0)"),  # not ignored
    (["train.epochs=0"], "train.epochs must be > 0"),
    (["train.max_steps=0"], "train.max_steps must be -1 or >= 1 (got 0)"),
    (["train.max_steps=-5"], "train.max_steps must be -1 or >= 1 (got -5)"),
    (["train.batch_size=0"], "train.batch_size must be >= 1 (got 0)"),
    (["train.gradient_accumulation_steps=-2"], "train.gradient_accumulation_steps must be >= 1"),
    (["train.lora.r=0"], "train.lora.r must be >= 1 (got 0)"),
    (["train.lora.alpha=-8"], "train.lora.alpha must be > 0"),
    (["train.lora.dropout=1.0"], "train.lora.dropout must be in [0, 1)"),
    (["train.warmup_ratio=-0.1"], "train.warmup_ratio must be in [0, 1)"),
    (["train.learning_rate=0"], "train.learning_rate must be > 0"),
    (["eval.decoding.batch_size=0"], "eval.decoding.batch_size must be >= 1"),
    (["eval.decoding.max_new_tokens=0"], "eval.decoding.max_new_tokens must be >= 1"),
    (["eval.decoding.top_p=0"], "eval.decoding.top_p must be in (0, 1]"),
    (["eval.decoding.temperature=-1"], "eval.decoding.temperature must be >= 0"),
    (["eval.confidence=1"], "eval.confidence must be in (0, 1)"),
    (["eval.bootstrap_samples=0"], "eval.bootstrap_samples must be >= 1"),
    (["data.max_train_rows=0"], "data.max_train_rows must be >= 1 (got 0)"),
    (["prompt.max_input_tokens=-1"], "prompt.max_input_tokens must be >= 0"),
    (["backend.checkpoint_steps=-1"], "backend.checkpoint_steps must be >= 0"),  # a plugin's schema
    (["model=tiny_random", "model.tiny.num_layers=0"], "model.tiny.num_layers must be >= 1"),
])
def test_out_of_range_values_are_refused_by_dotted_key(overrides, message, plugins):
    with pytest.raises(ConfigError) as err:
        validate(compose(overrides, plugins))
    assert message in str(err.value)


@pytest.mark.parametrize("overrides", [
    ["train.max_steps=-1"], ["train.max_steps=3"], ["data.max_train_rows=null"],
    ["train.warmup_ratio=0"], ["eval.decoding.temperature=0.7", "eval.decoding.top_p=1"],
])
def test_values_in_range_and_unset_sentinels_pass(overrides, plugins):
    validate(compose(overrides, plugins))


def test_a_config_read_back_from_a_run_folder_is_held_to_the_same_ranges(plugins):
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(compose(["+experiment=smoke"], plugins), resolve=True)
    cfg.pop("hydra", None)
    cfg["train"]["batch_size"] = -3
    with pytest.raises(ConfigError, match=r"train.batch_size must be >= 1 \(got -3\)"):
        validate(cfg, plugins)


UNBOUNDED = {"RunConfig.seed", "TrainConfig.seed", "EvalConfig.bootstrap_seed", "TinyModelConfig.seed",
             "CVConfig.seed", "DataConfig.split_seed"}
"""Numeric fields any integer suits (seeds)."""


def test_every_numeric_schema_field_declares_its_range(plugins):
    """A new count, size or rate gets a range where it is declared (``at_least``/``above``/``within``)."""
    from ftlab.config import RunConfig
    from ftlab.config.bounds import range_of

    seen, missing = set(), []

    def walk(cls):
        if cls in seen:
            return
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            t = hints[f.name]
            args = [a for a in typing.get_args(t) if a is not type(None)]
            t = args[0] if typing.get_origin(t) is typing.Union and len(args) == 1 else t
            if dataclasses.is_dataclass(t):
                walk(t)
            elif t in (int, float) and range_of(f) is None \
                    and f"{cls.__name__}.{f.name}" not in UNBOUNDED:
                missing.append(f"{cls.__name__}.{f.name}")

    walk(RunConfig)
    for info in plugins.backends().values():
        if info.name == "local_peft":
            walk(info.schema)
    for opt in plugins.model_sources().values():
        if opt.schema.__module__.startswith("ftlab_local_peft"):
            walk(opt.schema)
    assert missing == []
