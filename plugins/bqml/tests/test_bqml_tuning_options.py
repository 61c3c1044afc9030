"""train.* keys and eval.task → the tuning CREATE MODEL's OPTIONS, as ``Capabilities.train_keys`` declares."""

from __future__ import annotations

import io

import pytest

from ftlab.config import EvalConfig, RunConfig, TrainConfig
from ftlab.config.compose import compose, unused_train_keys, validate
from ftlab.contract import TrainJob

from ftlab_bqml import tuning
from ftlab_bqml.plugin import CAPABILITIES, BqmlConfig
from ftlab_bqml.validate import BqmlConfigError

BQ = ["backend=bqml", "model=gemini_2_0_flash", "backend.project=test-project", "backend.dataset=ftlab_ds"]


def _plan(backend=None, **groups):
    return tuning.plan(RunConfig(backend=backend or BqmlConfig(project="test-project", dataset="d"), **groups))


def test_defaults_send_what_the_service_defaults_to_for_classification():
    plan = _plan()
    assert (plan.learning_rate_multiplier, plan.data_split_method, plan.data_split_eval_fraction,
            plan.evaluation_task, plan.task_type, plan.notes) == (1.0, "NO_SPLIT", None, "CLASSIFICATION",
                                                                  "CLASSIFICATION", ())


@pytest.mark.parametrize("task,name", [("classification", "CLASSIFICATION"), ("text_generation", "TEXT_GENERATION"),
                                       ("summarization", "SUMMARIZATION"),
                                       ("question_answering", "QUESTION_ANSWERING")])
def test_eval_task_is_the_evaluation_task_and_the_task_type(task, name):
    plan = _plan(eval=EvalConfig(task=task))
    assert plan.evaluation_task == plan.task_type == name
    unspecified = _plan(BqmlConfig(project="test-project", dataset="d", evaluation_task="unspecified"),
                        eval=EvalConfig(task=task))
    assert (unspecified.evaluation_task, unspecified.task_type) == ("UNSPECIFIED", name)


def test_learning_rate_and_holdout_map_to_multiplier_and_random_split():
    plan = _plan(train=TrainConfig(learning_rate=6e-4, holdout_fraction=0.25))
    assert (plan.learning_rate_multiplier, plan.data_split_method, plan.data_split_eval_fraction) == (2.0, "RANDOM", 0.25)
    assert plan.notes == ("train.learning_rate=0.0006 → LEARNING_RATE_MULTIPLIER 2 (ftlab's default 0.0003 = the "
                          "service's recommended rate)",)
    rounded = _plan(train=TrainConfig(holdout_fraction=0.123))
    assert rounded.data_split_eval_fraction == 0.12 and "two decimals" in rounded.notes[0]
    explicit = _plan(BqmlConfig(project="test-project", dataset="d", learning_rate_multiplier=0.7,
                                data_split_method="auto_split"), train=TrainConfig(learning_rate=1e-3))
    assert (explicit.learning_rate_multiplier, explicit.data_split_method, explicit.notes) == (0.7, "AUTO_SPLIT", ())


@pytest.mark.parametrize("backend,groups,match", [
    (dict(data_split_method="NO_SPLIT"), dict(train=TrainConfig(holdout_fraction=0.2)),
     r"train\.holdout_fraction=0\.2 .* backend\.data_split_method=NO_SPLIT"),
    (dict(evaluation_task="CLASSIFICATION"), dict(eval=EvalConfig(task="summarization")),
     r"backend\.evaluation_task=CLASSIFICATION contradicts eval\.task=summarization"),
    ({}, dict(train=TrainConfig(holdout_fraction=0.004)), r"train\.holdout_fraction=0\.004 rounds to 0"),
])
def test_contradicting_keys_fail_naming_both(backend, groups, match):
    with pytest.raises(BqmlConfigError, match=match):
        _plan(BqmlConfig(project="test-project", dataset="d", **backend), **groups)


@pytest.mark.parametrize("kw,match", [
    (dict(data_split_method="CUSTOM"), r"backend\.data_split_method='CUSTOM' .* DATA_SPLIT_COL"),
    (dict(data_split_method="seq"), r"backend\.data_split_method='seq' .* DATA_SPLIT_COL"),
    (dict(data_split_method="AUTO_SPLIT", data_split_eval_fraction=0.3), r"backend\.data_split_eval_fraction=0\.3 "),
    (dict(generate_function="vertex"), r"backend\.generate_function='vertex'"),
    (dict(holdout_fraction=1.0), r"train\.holdout_fraction must be in \[0, 1\)"),
])
def test_bad_values_fail_naming_the_key(kw, match):
    with pytest.raises(ValueError, match=match):
        if "holdout_fraction" in kw:  # a host field: its range is checked with the rest of the schema
            from ftlab.config.bounds import check

            check(TrainConfig(**kw), "train.")
        else:
            BqmlConfig(project="test-project", dataset="d", **kw)


@pytest.mark.parametrize("backend_steps,train,want", [
    (None, dict(epochs=2), (200, 2, None)),
    (None, dict(epochs=1.5), (200, 2, "train.epochs=1.5 → MAX_ITERATIONS 200 = 2 whole epoch(s) of 100 rows")),
    (None, dict(epochs=0.2), (100, 1, "train.epochs=0.2 → MAX_ITERATIONS 100 = 1 whole epoch(s) of 100 rows")),
    (None, dict(max_steps=101), (200, 2, "train.max_steps=101 → MAX_ITERATIONS 200 = 2 whole epoch(s) of 100 rows")),
    (None, dict(max_steps=300, epochs=9), (300, 3, None)),
    (101, dict(epochs=5), (101, 2, None)),  # backend.max_iterations is sent as given; the service rounds it up
])
def test_max_iterations_are_whole_epochs_of_the_training_rows(backend_steps, train, want):
    cfg = BqmlConfig(project="test-project", dataset="d", max_iterations=backend_steps)
    steps, epochs, note = tuning.iterations(cfg, TrainConfig(**train), 100)
    assert (steps, epochs) == want[:2]
    assert (note or "").startswith(want[2] or "") and (note is None) == (want[2] is None)


def test_tuning_job_carries_the_mapped_options(make_backend, fake_bq, tmp_path):
    """25 rows, 1.5 epochs, half the default rate, 20 % held out: the fake tunes 2 whole epochs on 20 rows."""
    from ftlab_bqml.testing import load_examples, make_prompt

    out = io.StringIO()
    backend, _ = make_backend(out=out, groups={"train": TrainConfig(epochs=1.5, learning_rate=1.5e-4,
                                                                    holdout_fraction=0.2)})
    (tmp_path / "t").mkdir()
    trained = backend.train(TrainJob(load_examples("train", 25), load_examples("eval", 4), make_prompt(),
                                     tmp_path / "t"))
    (model,) = [m for m in fake_bq.engine.models.values() if m["kind"] == "tuned"]
    opt = model["options"]
    assert (opt["max_iterations"], opt["epochs"], opt["training_rows"]) == (50, 2, 20)
    assert (opt["learning_rate_multiplier"], opt["data_split_method"], opt["data_split_eval_fraction"]) == \
        (0.5, "RANDOM", 0.2)
    assert (trained.metrics["bqml/tuning_epochs"], trained.metrics["bqml/learning_rate_multiplier"]) == (2.0, 0.5)
    printed = out.getvalue()
    assert "train.epochs=1.5 → MAX_ITERATIONS 50 = 2 whole epoch(s) of 25 rows" in printed
    assert "LEARNING_RATE_MULTIPLIER 0.5" in printed


def test_declared_train_keys_keep_the_unused_report_truthful():
    from ftlab.plugins import get_plugins

    cfg = validate(compose([*BQ, "eval.decoding.mode=generate", "train.learning_rate=1e-4",
                            "train.holdout_fraction=0.1", "train.max_steps=40", "train.lora.r=8",
                            "train.warmup_ratio=0.2", "train.seed=3"]))
    assert unused_train_keys(cfg, get_plugins()) == ["train.lora.r=8", "train.seed=3", "train.warmup_ratio=0.2"]
    assert set(CAPABILITIES.train_keys) == {"method", "epochs", "max_steps", "learning_rate", "holdout_fraction"}
    local = validate(compose(["train.holdout_fraction=0.1"]))  # local_peft does not hold rows out
    assert unused_train_keys(local, get_plugins()) == ["train.holdout_fraction=0.1"]


def test_every_task_is_declared_and_a_summarization_config_validates():
    assert CAPABILITIES.tasks == ("classification", "text_generation", "summarization", "question_answering")
    assert CAPABILITIES.generation_methods == ("none", "lora")
    cfg = validate(compose([*BQ, "eval.task=summarization", "eval.decoding.mode=generate", "data.labels=[]",
                            "data.acceptable.source=none", "prompt.template='Summarize: {text}'",
                            "train.method=lora"]))
    assert cfg.eval.task == "summarization" and cfg.backend.generate_function == "ai"
