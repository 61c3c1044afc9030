"""What local_peft declares: both decoding modes and every training method, no fallback, no native eval."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("mode", ["score_labels", "generate"])
@pytest.mark.parametrize("method", ["none", "lora", "lora_cls"])
def test_every_mode_and_method_is_honoured_without_fallback(mode, method):
    from ftlab.config.compose import check_capabilities, compose, validate
    from ftlab.plugins import get_plugins

    cfg = validate(compose(["backend=local_peft", f"eval.decoding.mode={mode}", f"train.method={method}"]))
    assert check_capabilities(cfg, get_plugins()) == ()


def test_declared_capabilities():
    from ftlab.plugins import get_plugins

    caps = get_plugins().backend("local_peft").capabilities
    assert set(caps.decoding_modes) == {"score_labels", "generate"}
    assert set(caps.train_methods) == {"none", "lora", "lora_cls"}
    assert not caps.fallbacks and not caps.native_evaluate
    assert set(caps.decoding_options) == {"min_new_tokens", "num_beams", "length_penalty"}


def test_ftlab_plugins_lists_the_optional_decoding_keys(capsys):
    from ftlab.cli.plugins_cmd import main

    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    local = next(x for x in lines if "local_peft" in x and "eval.decoding.mode" in x)
    assert "optional eval.decoding keys: min_new_tokens, num_beams, length_penalty" in local
    bqml = next(x for x in lines if "bqml" in x and "eval.decoding.mode" in x)
    assert "optional eval.decoding keys: none" in bqml
