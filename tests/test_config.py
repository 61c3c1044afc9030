"""Every shipped config composes and validates; typos fail by name with a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftlab.config import RunConfig
from ftlab.config.compose import ConfigError, compose, validate

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))
GROUP_OPTIONS = sorted((p.parent.name, p.stem) for p in (ROOT / "conf").glob("*/*.yaml")
                       if p.parent.name != "experiment")


REQUIRED = {"mtsamples17_bqml": ["backend.project=my-project", "backend.dataset=ftlab_test"]}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_validates(name, plugins):
    cfg = validate(compose([f"+experiment={name}", *REQUIRED.get(name, [])], plugins))
    assert isinstance(cfg, RunConfig) and cfg.experiment == name


def _task_context(group: str, option: str) -> list[str]:
    """A generation prompt (no {labels}) or data config (no label set) composes in a generation task."""
    text = (ROOT / "conf" / group / f"{option}.yaml").read_text()
    if (group == "prompt" and "template:" in text and "{labels}" not in text) or (group == "data" and "labels: []" in text):
        return ["eval.task=text_generation", "eval.decoding.mode=generate", "data=mtsamples_title", "prompt=title"]
    return []


@pytest.mark.parametrize("group,option", GROUP_OPTIONS)
def test_every_group_option_composes(group, option, plugins):
    validate(compose([*_task_context(group, option), f"{group}={option}"], plugins))


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yaml")) +
                         sorted(p for p in (ROOT / "conf").glob("*/*.yaml") if p.parent.name != "experiment"),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_headers(path):
    lines = path.read_text().splitlines()
    if path.parent.name == "experiments":
        assert lines[0] == "# @package _global_", "the package directive must be the first line"
        assert lines[1].startswith("# Run: ftlab +experiment=" + path.stem)
    else:
        assert lines[0].startswith("# Run: ftlab")


@pytest.mark.parametrize("override,message", [
    ("train.learnig_rate=1e-3", "unknown config key 'train.learnig_rate'; did you mean 'train.learning_rate'?"),
    ("backend.devce=cpu", "unknown config key 'backend.devce'; did you mean 'backend.device'?"),
    ("data.acceptable.sorce=index", "did you mean 'data.acceptable.source'?"),
    ("train.batch_size=abc", "invalid value for config key 'train.batch_size'"),
    ("eval.decoding.mode=beam", "invalid value for config key 'eval.decoding.mode'"),
    ("model=tiny_rndom", "unknown option 'tiny_rndom' for config group 'model'; did you mean 'tiny_random'?"),
    ("+experiment=smok", "did you mean 'smoke'?"),
    ("+experiment=mtsamples17_bqml", "config key 'backend.project' must be set"),
])
def test_typos_fail_with_the_key_and_a_suggestion(override, message, plugins):
    with pytest.raises(ConfigError) as err:
        validate(compose([override], plugins))
    assert message in str(err.value)


@pytest.mark.parametrize("overrides,message", [
    (["train.epochs=0"], "train.epochs must be > 0"),
    (["eval.splits=[dev]"], "eval.splits: unknown split 'dev'"),
    (["model.source=local_dir"], "model.path must be set"),
    (["prompt.template=no placeholders"], "prompt.template must contain {text}"),
    (["prompt.template='only {text}'"], "prompt.template must contain {labels} for eval.task=classification"),
])
def test_cross_field_checks(overrides, message, plugins):
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        validate(compose(overrides, plugins))


def test_every_schema_field_is_documented():
    import ast
    import inspect

    import ftlab.config as c

    for cls in (c.RunConfig, c.ModelConfig, c.DataConfig, c.AcceptableLabelsConfig,
                c.PromptConfig, c.TrainConfig, c.LoraConfig, c.EvalConfig, c.DecodingConfig,
                c.TrackingConfig, c.BackendConfig):
        tree = ast.parse(inspect.getsource(cls))
        body = tree.body[0].body
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign):
                nxt = body[i + 1] if i + 1 < len(body) else None
                assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), \
                    f"{cls.__name__}.{node.target.id} has no docstring"


def test_config_reference_is_current(plugins):
    from pathlib import Path

    from ftlab.config.reference import render

    doc = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert doc.read_text().strip() == render(plugins).strip(), \
        "docs/config.md is stale: python -m ftlab.config.reference > docs/config.md"


@pytest.mark.parametrize("override,message", [
    ("+model.anything=1", "unknown config key 'model.anything'"),
    ("+model._target_=os.system", "unknown config key 'model._target_'"),
    ("+train.lora.rank=8", "unknown config key 'train.lora.rank'"),
    ("+train.learnig_rate=1e-3", "unknown config key 'train.learnig_rate'; did you mean 'train.learning_rate'?"),
    ("+backend.devce=cpu", "unknown config key 'backend.devce'; did you mean 'backend.device'?"),
    ("+data.acceptable.extra=1", "unknown config key 'data.acceptable.extra'"),
    ("+surprise=1", "unknown config key 'surprise'"),
])
def test_added_keys_on_structured_groups_are_refused(override, message, plugins):
    """Hydra's ``+key=`` adds to structured nodes too; the schema walk refuses what it lacks."""
    with pytest.raises(ConfigError) as err:
        validate(compose([override], plugins))
    assert message in str(err.value)


@pytest.mark.parametrize("value", ["0", "-1e-4", "0.0"])
def test_learning_rate_must_be_positive(value, plugins):
    with pytest.raises(ConfigError, match=r"train.learning_rate must be > 0"):
        validate(compose([f"train.learning_rate={value}"], plugins))


def test_an_untyped_config_with_an_added_key_is_refused(plugins):
    """A config read back from a run folder (a plain dict) is held to the same schemas."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(compose(["+experiment=smoke"], plugins), resolve=True)
    cfg.pop("hydra", None)
    cfg["model"]["_target_"] = "os.system"
    with pytest.raises(ConfigError, match="unknown config key 'model._target_'"):
        validate(cfg, plugins)
