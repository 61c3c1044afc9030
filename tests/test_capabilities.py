"""Backend capabilities: an unsupported choice fails at validation, a documented fallback is recorded.

The backends here live in the test tree only (registered by fixtures, unregistered afterwards), as a
third-party plugin would: the host knows none of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from fake_backend import FakeBackend, FakeConfig
from ftlab import hookimpl
from ftlab.config.compose import ConfigError, check_capabilities, compose, validate
from ftlab.contract import Capabilities, Fallback
from ftlab.plugins import PluginError, Plugins

GENERATE_ONLY = Capabilities(decoding_modes=("generate",), train_methods=("none", "lora"))
WITH_FALLBACK = Capabilities(
    decoding_modes=("generate",),
    fallbacks=(Fallback("eval.decoding.mode", "score_labels", "generate", "this backend only generates"),))


@dataclass
class GenOnlyConfig(FakeConfig):
    """The fake backend, registered as ``genonly``: it declares ``generate`` only."""

    name: str = "genonly"
    """Backend name."""


@dataclass
class GenFallbackConfig(FakeConfig):
    """The fake backend, registered as ``genfallback``: ``score_labels`` falls back to ``generate``."""

    name: str = "genfallback"
    """Backend name."""


@dataclass
class NativeConfig(FakeConfig):
    """The fake backend, registered as ``native``: declares native evaluation."""

    name: str = "native"
    """Backend name."""


@dataclass
class UndeclaredNativeConfig(FakeConfig):
    """The fake backend with a ``native_evaluate`` method it does not declare."""

    name: str = "undeclared"
    """Backend name."""


class RecordingBackend(FakeBackend):
    """Remembers the decoding it was handed; counts native evaluations."""

    seen: list = []
    native_calls: list = []

    def predict(self, model, examples, prompt, decoding):
        RecordingBackend.seen.append(decoding.mode)
        return super().predict(model, examples, prompt, decoding)

    def native_evaluate(self, model, examples, prompt):
        RecordingBackend.native_calls.append(model.kind)
        return {"macro_f1": 0.5, "rows": float(len(examples))}


class ThirdParty:
    @hookimpl
    def ftlab_register_backends(self, register):
        register("genonly", lambda cfg, ctx: RecordingBackend(cfg, ctx), GenOnlyConfig, GENERATE_ONLY)
        register("genfallback", lambda cfg, ctx: RecordingBackend(cfg, ctx), GenFallbackConfig, WITH_FALLBACK)
        register("native", lambda cfg, ctx: RecordingBackend(cfg, ctx), NativeConfig,
                 Capabilities(native_evaluate=True))
        register("undeclared", lambda cfg, ctx: RecordingBackend(cfg, ctx), UndeclaredNativeConfig)


@pytest.fixture
def third(fake_backend):
    name = fake_backend.register(ThirdParty(), name="third_party")
    RecordingBackend.seen, RecordingBackend.native_calls = [], []
    yield fake_backend
    fake_backend.unregister(name)


def test_generate_only_backend_refuses_score_labels_at_composition(third):
    with pytest.raises(ConfigError) as err:
        validate(compose(["+experiment=smoke", "backend=genonly", "eval.decoding.mode=score_labels"], third))
    msg = str(err.value)
    assert "eval.decoding.mode=score_labels" in msg and "'genonly'" in msg
    assert "supports eval.decoding.mode: generate" in msg
    ok = validate(compose(["+experiment=smoke", "backend=genonly", "eval.decoding.mode=generate"], third))
    assert check_capabilities(ok, third) == ()


def test_unsupported_train_method_names_key_value_backend_and_the_supported_ones(third):
    with pytest.raises(ConfigError, match=r"train\.method=lora_cls is not supported by backend 'genonly'; "
                                          r"it supports train\.method: none, lora"):
        validate(compose(["+experiment=smoke", "backend=genonly", "eval.decoding.mode=generate",
                          "train.method=lora_cls"], third))


def test_undeclared_backend_is_not_checked(third):
    """A backend registered without capabilities keeps the old behaviour: every choice passes."""
    for mode in ("generate", "score_labels"):
        for method in ("none", "lora", "lora_cls"):
            cfg = validate(compose(["+experiment=smoke", "backend=fake", f"eval.decoding.mode={mode}",
                                    f"train.method={method}"], third))
            assert check_capabilities(cfg, third) == ()


def test_untyped_config_is_checked_too(third):
    """A config read back from a run (a plain dict) goes through the same check."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(compose(["+experiment=smoke", "backend=genonly"], third))
    plain["eval"]["decoding"]["mode"] = "score_labels"
    with pytest.raises(ConfigError, match="not supported by backend 'genonly'"):
        validate(plain, third)


def test_fallback_is_applied_tagged_in_the_manifest_and_printed(third, tmp_path, capsys):
    from ftlab.runner import run
    from conftest import mlflow_client

    cfg = compose(["+experiment=smoke", "backend=genfallback", "eval.decoding.mode=score_labels",
                   "stages=[evaluate_base]"], third)
    run(cfg, run_dir=tmp_path / "run", plugins=third)
    assert RecordingBackend.seen == ["generate"]  # the backend was told what it really does
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["fallbacks"] == [{"key": "eval.decoding.mode", "requested": "score_labels",
                                      "used": "generate", "reason": "this backend only generates"}]
    out = capsys.readouterr().out
    assert "fallback (genfallback): eval.decoding.mode=score_labels → generate: this backend only generates" in out
    client = mlflow_client()
    (r,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert r.data.tags["ftlab.fallback.eval.decoding.mode"].startswith("eval.decoding.mode=score_labels → generate")
    assert r.data.params["eval.decoding.mode"] == "score_labels"  # the request stays as configured


def test_no_fallback_no_record(third, tmp_path, capsys):
    from ftlab.runner import run

    run(compose(["+experiment=smoke", "backend=genfallback", "eval.decoding.mode=generate",
                 "stages=[evaluate_base]"], third), run_dir=tmp_path / "run", plugins=third)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["fallbacks"] == []
    assert "fallback (" not in capsys.readouterr().out


def test_native_evaluate_is_called_only_when_declared(third, tmp_path):
    from ftlab.runner import run
    from conftest import mlflow_client

    run(compose(["+experiment=smoke", "backend=undeclared", "stages=[evaluate_base]"], third),
        run_dir=tmp_path / "a", plugins=third)
    assert RecordingBackend.native_calls == []  # a method alone is not a declaration
    run(compose(["+experiment=smoke", "backend=native", "stages=[evaluate_base]"], third),
        run_dir=tmp_path / "b", plugins=third)
    assert RecordingBackend.native_calls == ["base"]
    client = mlflow_client()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    native = [r for r in runs if r.data.tags.get("ftlab.backend") == "native"]
    assert native[0].data.metrics["native/base/eval/macro_f1"] == 0.5


def test_declared_native_evaluate_without_the_method_is_a_plugin_error(fake_backend, tmp_path):
    from ftlab.runner import run

    class Declares:
        @hookimpl
        def ftlab_register_backends(self, register):
            register("native", lambda cfg, ctx: FakeBackend(cfg, ctx), NativeConfig,
                     Capabilities(native_evaluate=True))

    name = fake_backend.register(Declares(), name="declares")
    try:
        with pytest.raises(PluginError, match="declares native_evaluate but has no native_evaluate"):
            run(compose(["+experiment=smoke", "backend=native", "stages=[evaluate_base]"], fake_backend),
                run_dir=tmp_path / "r", plugins=fake_backend)
    finally:
        fake_backend.unregister(name)


def test_capabilities_must_be_the_contract_type():
    class Bad:
        @hookimpl
        def ftlab_register_backends(self, register):
            register("badcaps", lambda cfg, ctx: None, GenOnlyConfig, {"decoding_modes": ["generate"]})

    m = Plugins(load_entry_points=False)
    m.register(Bad(), name="bad")
    with pytest.raises(PluginError, match="capabilities of type dict"):
        m.backends()


@pytest.mark.parametrize("key,value", [("num_beams", 4), ("min_new_tokens", 8), ("length_penalty", 2.0)])
def test_optional_decoding_keys_are_refused_by_a_backend_that_does_not_declare_them(third, key, value):
    """min_new_tokens, num_beams and length_penalty must be declared (``Capabilities.decoding_options``):
    a backend without them, declared capabilities or none, would ignore them silently."""
    for backend in ("genonly", "fake"):
        with pytest.raises(ConfigError) as err:
            validate(compose(["+experiment=smoke", f"backend={backend}", "eval.decoding.mode=generate",
                              f"eval.decoding.{key}={value}"], third))
        assert f"eval.decoding.{key}={value} is not supported by backend '{backend}'" in str(err.value)
        assert err.value.keys == (f"eval.decoding.{key}",)
    ok = validate(compose(["+experiment=smoke", "backend=genonly", "eval.decoding.mode=generate"], third))
    assert check_capabilities(ok, third) == ()  # every key at its default passes
