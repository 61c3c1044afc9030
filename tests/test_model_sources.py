"""Model sources belong to backend plugins: the host's ``model`` schema is only ``name`` and ``source``.

The source registered here (``toy_hub``) lives in the test tree, as a third-party plugin's would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from omegaconf import OmegaConf

from fake_backend import FakeBackend, FakeConfig
from ftlab import hookimpl
from ftlab.config import ModelConfig
from ftlab.config.compose import ConfigError, compose, unused_train_keys, validate
from ftlab.contract import Capabilities


@dataclass
class ToyHubModel(ModelConfig):
    """A model fetched from a toy hub by ``repo``."""

    name: str = "toy"
    """Short name."""
    source: str = "toy_hub"
    """toy_hub."""
    repo: str = "???"
    """Repository id on the toy hub."""


@dataclass
class EpochsOnlyConfig(FakeConfig):
    """The fake backend, registered as ``epochsonly``: it declares it uses train.method and train.epochs."""

    name: str = "epochsonly"
    """Backend name."""


class ToyPlugin:
    @hookimpl
    def ftlab_register_configs(self, store):
        store("model_source", "toy_hub", ToyHubModel)

    @hookimpl
    def ftlab_register_backends(self, register):
        register("epochsonly", lambda cfg, ctx: FakeBackend(cfg, ctx), EpochsOnlyConfig,
                 Capabilities(train_keys={"method": "as is", "epochs": "steps = epochs x rows"}),
                 distributions=("rich", "surely-not-installed-dist"))


@pytest.fixture
def toy(fake_backend):
    name = fake_backend.register(ToyPlugin(), name="toy_plugin")
    yield fake_backend
    fake_backend.unregister(name)


def _plain(plugins, *overrides):
    plain = OmegaConf.to_container(compose(["+experiment=smoke", "backend=fake", *overrides], plugins))
    plain.pop("hydra", None)
    return plain


def test_host_model_schema_is_name_and_source_only():
    import dataclasses

    assert [f.name for f in dataclasses.fields(ModelConfig)] == ["name", "source"]


def test_a_plugin_source_types_an_untyped_model_node(toy):
    plain = _plain(toy)
    plain["model"] = {"name": "toy", "source": "toy_hub", "repo": "org/toy-1"}
    cfg = validate(plain, toy)
    assert type(cfg.model) is ToyHubModel and cfg.model.repo == "org/toy-1"
    plain["model"]["repo_id"] = "x"
    with pytest.raises(ConfigError, match=r"unknown config key 'model.repo_id'; did you mean 'model.repo'\?"):
        validate(plain, toy)


def test_a_source_key_is_required_by_its_schema(toy):
    plain = _plain(toy)
    plain["model"] = {"name": "toy", "source": "toy_hub"}
    with pytest.raises(ConfigError, match="model.repo"):
        validate(plain, toy)


def test_unknown_source_fails_with_the_registered_ones(toy):
    plain = _plain(toy)
    plain["model"] = {"name": "toy", "source": "toy_hb", "repo": "a/b"}
    with pytest.raises(ConfigError, match=r"unknown model source 'toy_hb'; did you mean 'toy_hub'\?.*"
                                          r"registered: .*tiny_random, toy_hub"):
        validate(plain, toy)


def test_a_composed_model_of_another_sources_schema_is_refused(toy):
    with pytest.raises(ConfigError, match=r"model.source='toy_hub' is registered with schema ToyHubModel"):
        validate(compose(["+experiment=smoke", "backend=fake", "model.source=toy_hub"], toy), toy)


def test_source_registered_twice_is_an_error(toy):
    from ftlab.plugins import PluginError

    class Again:
        @hookimpl
        def ftlab_register_configs(self, store):
            store("model_source", "toy_hub", ToyHubModel)

    toy.register(Again(), name="again")
    try:
        with pytest.raises(PluginError, match="model source 'toy_hub' registered twice"):
            toy.model_sources()
    finally:
        toy.unregister("again")


def test_unused_train_keys_are_listed_printed_tagged_and_in_the_manifest(toy, tmp_path, caplog):
    from conftest import mlflow_client
    from ftlab.runner import run

    overrides = ["+experiment=smoke", "backend=epochsonly", "train.lora.r=4", "train.epochs=2",
                 "stages=[evaluate_base]"]
    cfg = validate(compose(overrides, toy), toy)
    # smoke sets max_steps, batch size, accumulation, logging and learning rate away from the defaults
    assert unused_train_keys(cfg, toy) == [
        "train.gradient_accumulation_steps=1", "train.learning_rate=0.001", "train.logging_steps=2",
        "train.lora.r=4", "train.max_steps=6"]
    run(compose(overrides, toy), run_dir=tmp_path / "run", plugins=toy)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "train.lora.r=4" in manifest["unused_train_keys"] and "train.epochs=2" not in manifest["unused_train_keys"]
    assert "backend epochsonly does not use" in caplog.text and "train.lora.r=4" in caplog.text
    run_id = json.loads((tmp_path / "run" / "mlflow_run.json").read_text())["run_id"]
    assert "train.lora.r=4" in mlflow_client().get_run(run_id).data.tags["ftlab.unused_train_keys"]
    # the backend's registered distributions are recorded, the host's own too, uninstalled ones left out
    versions = manifest["versions"]
    assert "rich" in versions and "omegaconf" in versions and "surely-not-installed-dist" not in versions


def test_undeclared_train_keys_report_nothing(toy):
    cfg = validate(compose(["+experiment=smoke", "backend=fake", "train.lora.r=4"], toy), toy)
    assert unused_train_keys(cfg, toy) == []
