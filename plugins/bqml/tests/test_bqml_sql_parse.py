"""An independent check of the BigQuery SQL: a real parser (sqlglot, BigQuery dialect) reads every
generated statement, and the fake server is tried on hand-written SQL in the form of Google's
documentation examples, not only on what the generator emits."""

from __future__ import annotations

import json

import pytest
from bq_dialect import MLEvaluate, MLTrainingInfo, parse
from sqlglot import exp
from sqlglot.errors import ParseError
from test_bqml_sql import _statements

from ftlab_bqml.fake.engine import Engine, SqlError
from ftlab_bqml.fake.server import Faults


def _aliases(select: exp.Select) -> list[str]:
    return [e.alias_or_name for e in select.expressions]


def _struct_fields(node) -> list[str]:
    return [e.alias_or_name for e in node.expressions]


def _options(create: exp.Create) -> dict[str, str]:
    props = create.args["properties"].expressions
    opts = [p for p in props if type(p) is exp.Property]  # not the connection (a Property subclass)
    return {p.name.lower(): p.args["value"].sql(dialect="bigquery") for p in opts}


@pytest.mark.parametrize("kind", sorted(_statements()))
def test_every_generated_statement_parses_as_bigquery(kind):
    tree = parse(_statements()[kind])
    for table in tree.find_all(exp.Table):  # every name fully qualified, as a statement job needs
        if not isinstance(table.this, exp.Identifier) or table.find_ancestor(
                exp.RemoteWithConnectionModelProperty):
            continue  # the ML.* call itself, or the connection (DEFAULT)
        assert table.catalog and table.db and table.name, f"{kind}: {table.sql('bigquery')}"


def test_the_parse_trees_say_what_each_statement_does():
    s = {k: parse(v) for k, v in _statements().items()}
    for kind in ("create_model", "create_model_named_connection", "create_tuned_model"):
        tree = s[kind]
        assert isinstance(tree, exp.Create) and tree.args["kind"] == "MODEL" and tree.args.get("replace")
        assert tree.find(exp.RemoteWithConnectionModelProperty) is not None
        assert _options(tree)["endpoint"] == "'gemini-2.0-flash-001'"
    tuned = s["create_tuned_model"]
    assert _aliases(tuned.expression) == ["prompt", "label"]
    assert _options(tuned)["input_label_cols"] == "['label']" and _options(tuned)["prompt_col"] == "'prompt'"
    assert _options(tuned)["max_iterations"] == "519"
    for kind in ("generate_text", "generate_text_retry"):
        gen = s[kind].find(exp.GenerateText)
        assert _aliases(gen.expression.this) == ["id", "prompt"]
        assert _struct_fields(gen.args["params_struct"]) == ["max_output_tokens", "temperature", "top_p",
                                                              "flatten_json_output"]
    assert s["generate_text_retry"].find(exp.Unnest) is not None
    # the input-column rule, read from the tree: untuned input_text/output_text, tuned prompt/label
    for kind, columns in (("evaluate_base", ["input_text", "output_text"]), ("evaluate_tuned", ["prompt", "label"])):
        ev = s[kind].find(MLEvaluate)
        assert ev is not None and _aliases(ev.expression.this) == columns
        assert _struct_fields(ev.args["params_struct"]) == ["task_type", "max_output_tokens", "temperature", "top_p"]
    assert isinstance(s["load_data"], exp.LoadData)
    assert s["build_prompt_table"].args["kind"] == "TABLE" and _aliases(s["build_prompt_table"].expression)[-1] == "prompt"


@pytest.mark.parametrize("broken", [
    "CREATE OR REPLACE MODEL `p.d.m` REMOTE WITH CONNECTION DEFAULT OPTIONS(endpoint = 'x'",
    "SELECT * FROM ML.EVALUATE(MODEL `p.d.m`, (SELECT prompt AS FROM `p.d.t`))",
    "SELECT id FROM ML.GENERATE_TEXT(MODEL `p.d.m`, (SELECT id FROM `p.d.t`)), STRUCT(1 AS x))",
])
def test_the_parser_rejects_broken_statements(broken):
    """The check can fail: a dangling option, alias or parenthesis does not parse. (sqlglot forgives a
    missing closing parenthesis at the very end, so that is not among these.)"""
    with pytest.raises(ParseError):
        parse(broken)


DOCS = "https://docs.cloud.google.com/bigquery/docs"
DOC_EXAMPLES = [
    # {DOCS}/reference/standard-sql/bigqueryml-syntax-create-remote-model, example "gemini_model"
    ("create_model", """CREATE OR REPLACE MODEL `myproject.mydataset.gemini_model`
  REMOTE WITH CONNECTION DEFAULT
  OPTIONS(ENDPOINT = 'gemini-2.5-pro');"""),
    # {DOCS}/tune-evaluate: the baseline model over a named connection
    ("create_model", """CREATE OR REPLACE MODEL `myproject.bqml_tutorial.gemini_baseline`
  REMOTE WITH CONNECTION `myproject.us.bqml_conn`
  OPTIONS (ENDPOINT ='gemini-2.0-flash-001');"""),
    # {DOCS}/reference/standard-sql/bigqueryml-syntax-create-remote-model-tuned / generate-text-tuning
    ("create_tuned_model", """CREATE OR REPLACE MODEL `myproject.bqml_tutorial.gemini_tuned`
  REMOTE
    WITH CONNECTION DEFAULT
  OPTIONS (
    endpoint = 'gemini-2.0-flash-001',
    max_iterations = 500,
    prompt_col = 'prompt',
    input_label_cols = ['label'],
    data_split_method = 'no_split')
AS
SELECT
  prompt AS prompt,
  output_text AS label
FROM
  `myproject.bqml_tutorial.medical_transcript_train`;"""),
    # {DOCS}/reference/standard-sql/bigqueryml-syntax-evaluate: an untuned model, task_type only
    ("evaluate", """SELECT
  *
FROM
  ML.EVALUATE(
    MODEL `myproject.bqml_tutorial.gemini_baseline`,
    (
      SELECT prompt AS input_text, output_text
      FROM `myproject.bqml_tutorial.medical_transcript_eval`
    ),
    STRUCT('classification' AS task_type));"""),
    # the same for the tuned model, with the decoding parameters the reference lists
    ("evaluate", """SELECT * FROM ML.EVALUATE(MODEL `myproject.bqml_tutorial.gemini_tuned`,
  (SELECT prompt AS prompt, output_text AS label FROM `myproject.bqml_tutorial.medical_transcript_eval`),
  STRUCT('CLASSIFICATION' AS task_type, 32 AS max_output_tokens, 0.0 AS temperature, 1.0 AS top_p));"""),
    # {DOCS}/reference/standard-sql/bigqueryml-syntax-generate-text: flattened output, defaults otherwise
    ("generate_text", """SELECT id, prompt, ml_generate_text_llm_result, ml_generate_text_status
FROM
  ML.GENERATE_TEXT(
    MODEL `myproject.bqml_tutorial.gemini_baseline`,
    (SELECT id, prompt FROM `myproject.bqml_tutorial.medical_transcript_eval`),
    STRUCT(TRUE AS flatten_json_output));"""),
    # {DOCS}/tune-evaluate: loading the tutorial's sample file
    ("load_data", """LOAD DATA OVERWRITE `myproject.bqml_tutorial.medical_transcript_eval`
  (id STRING, input_text STRING, output_text STRING)
FROM FILES(
  format='NEWLINE_DELIMITED_JSON',
  uris = ['gs://cloud-samples-data/vertex-ai/model-evaluation/peft_eval_sample.jsonl']);"""),
]


@pytest.mark.parametrize("kind,sql", DOC_EXAMPLES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(DOC_EXAMPLES)])
def test_the_fake_recognises_documentation_style_sql(kind, sql):
    parse(sql)  # the hand-written statement is valid BigQuery to a real parser
    found, _ = Engine(Faults()).classify(sql)
    assert found == kind


@pytest.mark.parametrize("sql", [
    "SELECT * FROM ML.TRAINING_INFO(MODEL `myproject.mydataset.gemini_tuned`)",  # not for remote LLMs
    "SELECT * FROM AI.GENERATE_TEXT(MODEL `myproject.mydataset.m`, (SELECT 'hi' AS prompt))",
    "SELECT * FROM ML.EVALUATE(MODEL `myproject.mydataset.gemini_tuned`)",  # training metrics: unsupported
])
def test_documented_statements_the_fake_does_not_implement_are_refused(sql):
    tree = parse(sql)  # valid BigQuery …
    assert tree.find(MLTrainingInfo, MLEvaluate, exp.Anonymous) is not None or "AI." in sql
    with pytest.raises(SqlError) as err:  # … that the fake refuses as BigQuery refuses what it cannot run
        Engine(Faults()).classify(sql)
    assert err.value.reason == "invalidQuery"


def test_documentation_style_statements_run_end_to_end_on_the_fake(tmp_path):
    """Load, prompt table, base model and evaluation written as the docs write them (defaults for the
    generation parameters they leave out) give per-label rows."""
    rows = [{"id": str(i), "input_text": f"patient note {i} about the {lab.lower()}", "output_text": lab}
            for i, lab in enumerate(["Dentistry", "Neurology"] * 6)]
    sample = tmp_path / "peft_eval_sample.jsonl"
    sample.write_text("".join(json.dumps(r) + "\n" for r in rows))
    uri = "gs://cloud-samples-data/vertex-ai/model-evaluation/peft_eval_sample.jsonl"
    engine = Engine(Faults(), gcs_files={uri: str(sample)})

    def run(sql, params=None):
        result = engine.execute(sql, params or {})
        if result.effect:
            result.effect()
        return result

    run(DOC_EXAMPLES[6][1])
    run("CREATE OR REPLACE TABLE `myproject.bqml_tutorial.medical_transcript_eval` AS\n"
        "SELECT id, input_text, output_text, CONCAT(@prompt_prefix, IF(@max_input_chars > 0 AND "
        "LENGTH(input_text) > @max_input_chars, SUBSTR(input_text, 1, @max_input_chars), input_text), "
        "@prompt_suffix) AS prompt\nFROM `myproject.bqml_tutorial.medical_transcript_eval`",
        {"prompt_prefix": "Specialty? ", "prompt_suffix": "", "max_input_chars": 0})
    run(DOC_EXAMPLES[1][1])
    result = run(DOC_EXAMPLES[3][1])
    assert {r["label"] for r in result.rows} >= {"Dentistry", "Neurology"}
    assert all(0.0 <= float(r["f1_score"]) <= 1.0 for r in result.rows)
