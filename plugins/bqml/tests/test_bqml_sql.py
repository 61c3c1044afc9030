"""Golden SQL for every statement kind, the ML.EVALUATE input-column rule, injection rejection."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftlab_bqml import sql, tuning
from ftlab_bqml.plugin import BqmlConfig
from ftlab_bqml.validate import BqmlConfigError

GOLDEN = Path(__file__).parent / "golden"
P, D = "my-project", "ftlab_mtsamples17"
MODEL_BASE, MODEL_TUNED = sql.ref(P, D, "ftlab_base"), sql.ref(P, D, "ftlab_tuned")
TRAIN, EVAL = sql.ref(P, D, "ftlab_train"), sql.ref(P, D, "ftlab_eval")
DEFAULTS = BqmlConfig(project=P, dataset=D)
# the default experiment: 519 training rows, train.epochs=1, eval.decoding max_new_tokens=16, T=0, top_p=1
GEN = dict(max_output_tokens=16, temperature=0.0, top_p=1.0)


def _plan(**groups):
    """The tuning plan a run config with these groups resolves to (what the backend sends)."""
    from ftlab.config import RunConfig

    return tuning.plan(RunConfig(backend=DEFAULTS, **groups))


def _tune_options(plan, max_iterations: int) -> sql.TuneOptions:
    return sql.TuneOptions(endpoint=DEFAULTS.endpoint, max_iterations=max_iterations,
                           learning_rate_multiplier=plan.learning_rate_multiplier,
                           data_split_method=plan.data_split_method,
                           data_split_eval_fraction=plan.data_split_eval_fraction,
                           evaluation_task=plan.evaluation_task)


def _statements() -> dict[str, str]:
    from ftlab.config import EvalConfig, TrainConfig

    default = _plan()
    # mtsamples_summarize: 965 training rows, 2 epochs, half ftlab's default rate, 10 % held out
    summarize = _plan(eval=EvalConfig(task="summarization"),
                      train=TrainConfig(epochs=2, learning_rate=1.5e-4, holdout_fraction=0.1))
    return {
        "create_model": sql.create_base_model(MODEL_BASE, "DEFAULT", DEFAULTS.endpoint),
        "create_model_named_connection": sql.create_base_model(MODEL_BASE, "my-project.us.bqml_conn",
                                                               DEFAULTS.endpoint),
        "create_tuned_model": sql.create_tuned_model(MODEL_TUNED, "DEFAULT", TRAIN, _tune_options(default, 519)),
        "create_tuned_model_summarization": sql.create_tuned_model(MODEL_TUNED, "DEFAULT", TRAIN,
                                                                   _tune_options(summarize, 2 * 965)),
        "generate_text": sql.generate_text(MODEL_BASE, EVAL, **GEN, function="ml"),
        "generate_text_retry": sql.generate_text(MODEL_TUNED, EVAL, **GEN, only_ids=True, function="ml"),
        "ai_generate_text": sql.generate_text(MODEL_BASE, EVAL, **GEN, function=DEFAULTS.generate_function),
        "ai_generate_text_retry": sql.generate_text(MODEL_TUNED, EVAL, **GEN, only_ids=True, function="ai"),
        "evaluate_base": sql.evaluate(MODEL_BASE, EVAL, False, default.task_type, **GEN),
        "evaluate_tuned": sql.evaluate(MODEL_TUNED, EVAL, True, default.task_type, **GEN),
        "evaluate_base_summarization": sql.evaluate(MODEL_BASE, EVAL, False, summarize.task_type, **GEN),
        "evaluate_tuned_text_generation": sql.evaluate(MODEL_TUNED, EVAL, True, "TEXT_GENERATION", **GEN),
        "evaluate_tuned_question_answering": sql.evaluate(MODEL_TUNED, EVAL, True, "QUESTION_ANSWERING", **GEN),
        "load_data": sql.load_data(sql.ref(P, D, "ftlab_train_raw"),
                                   "gs://cloud-samples-data/vertex-ai/model-evaluation/peft_train_sample.jsonl"),
        "build_prompt_table": sql.build_prompt_table(TRAIN, sql.ref(P, D, "ftlab_train_raw")),
    }


KIND = {"create_model_named_connection": "create_model", "create_tuned_model_summarization": "create_tuned_model",
        "generate_text_retry": "generate_text", "ai_generate_text": "generate_text",
        "ai_generate_text_retry": "generate_text"}
"""Golden file → the statement kind the fake must classify it as (default: the file's own name, or
``evaluate`` for every ``evaluate_*``)."""


REGENERATE = "python plugins/bqml/tests/regen_golden.py"
"""The only way golden files change: it rewrites them, then the diff is reviewed and committed."""


@pytest.mark.parametrize("kind", sorted(_statements()))
def test_golden_sql(kind):
    """The test only reads the golden copy; a deliberate change goes through ``REGENERATE``."""
    text = _statements()[kind] + "\n"
    path = GOLDEN / f"{kind}.sql"
    assert path.is_file(), f"no golden copy of {kind}: run `{REGENERATE}` and review the new file"
    assert text == path.read_text(), f"{kind} changed; if intended, run `{REGENERATE}` and review the diff"


def test_every_golden_file_is_a_statement_kind():
    stale = sorted({p.stem for p in GOLDEN.glob("*.sql")} - set(_statements()))
    assert not stale, f"golden files without a statement kind: {stale} (`{REGENERATE}` removes them)"


@pytest.mark.parametrize("kind", sorted(_statements()))
def test_fake_recognises_every_statement_kind(kind):
    from ftlab_bqml.fake.engine import Engine
    from ftlab_bqml.fake.server import Faults

    found, _ = Engine(Faults()).classify(_statements()[kind])
    assert found == KIND.get(kind, "evaluate" if kind.startswith("evaluate") else kind)


def test_evaluate_input_column_rule():
    assert sql.evaluate_input_columns(tuned=False) == ("input_text", "output_text")
    assert sql.evaluate_input_columns(tuned=True) == ("prompt", "label")
    base = sql.evaluate(MODEL_BASE, EVAL, False, "CLASSIFICATION", **GEN)
    tuned = sql.evaluate(MODEL_TUNED, EVAL, True, "CLASSIFICATION", **GEN)
    assert "(SELECT prompt AS input_text, output_text AS output_text FROM" in base
    assert "(SELECT prompt AS prompt, output_text AS label FROM" in tuned


def test_explicit_decoding_everywhere():
    for kind, text in _statements().items():
        if "generate" in kind or "evaluate" in kind:
            assert "16 AS max_output_tokens, 0.0 AS temperature, 1.0 AS top_p" in text


@pytest.mark.parametrize("key,value", [
    ("dataset", "ds`; DROP TABLE x; --"),
    ("dataset", "my.dataset"),
    ("project", "my-project`.x"),
    ("project", "My_Project"),
    ("endpoint", "gemini-2.0-flash-001'), OPTIONS(x='"),
    ("endpoint", "gemini\\'"),
    ("connection", "my-project.us.conn` OPTIONS(endpoint='x')--"),
    ("connection", "conn"),
    ("location", "US'"),
    ("name_prefix", "ftlab-x"),
    ("gcs_train_uri", "gs://bucket/a.jsonl'] ) ; DROP MODEL m; --"),
    ("gcs_eval_uri", "https://evil/x.jsonl"),
    ("data_split_method", "NO_SPLIT' --"),
    ("evaluation_task", "classification'"),
    ("temperature", 1.5),
    ("max_output_tokens", 0),
    ("learning_rate_multiplier", 0.0),
])
def test_injection_and_bad_values_rejected_naming_the_key(key, value):
    with pytest.raises(BqmlConfigError, match=rf"backend\.{key}"):
        BqmlConfig(**{"project": P, "dataset": D, key: value})


def test_required_keys_named():
    with pytest.raises(BqmlConfigError, match=r"backend\.project must be set"):
        BqmlConfig(dataset=D)


def test_templates_reject_breakouts_even_without_config():
    with pytest.raises(BqmlConfigError):
        sql.ref(P, D, "t`; SELECT 1; --")
    with pytest.raises(BqmlConfigError):
        sql.create_base_model(MODEL_BASE, "DEFAULT", "x' OR '1'='1")
    with pytest.raises(BqmlConfigError):
        sql.generate_text(MODEL_BASE, EVAL, max_output_tokens="16 AS x", temperature=0.0, top_p=1.0)
    from ftlab_bqml.validate import sql_string
    with pytest.raises(BqmlConfigError):
        sql_string("a\nb")


def test_valid_named_connection_and_choices_normalised():
    cfg = BqmlConfig(project=P, dataset=D, connection="my-project.us-central1.my_conn",
                     data_split_method="no_split", evaluation_task="classification")
    assert cfg.data_split_method == "NO_SPLIT" and cfg.evaluation_task == "CLASSIFICATION"
    assert "`my-project.us-central1.my_conn`" in sql.create_base_model(MODEL_BASE, cfg.connection, cfg.endpoint)
