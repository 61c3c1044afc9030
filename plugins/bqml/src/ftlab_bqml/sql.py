"""The statements ftlab sends to BigQuery, as small templates (no SQL round-trip library).

Identifiers are validated and backticked; fixed option values are checked literals (see
``validate``); per-run values that BigQuery accepts as query parameters (row ids, prompt pieces)
are parameters. The prompt itself is rendered by the host's ``Prompt`` in Python and uploaded as
the ``prompt`` column, so BigQuery sees exactly the text the local backend sees; only the gs://
path (``LOAD DATA``) builds it in SQL from the same rendered prefix and suffix.

Input-column rule of ``ML.EVALUATE`` (a real trap): an untuned remote model reads
``input_text``/``output_text``, a tuned one reads its ``prompt_col``/``input_label_cols``
(``prompt``/``label``). See :func:`evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ftlab_bqml import validate as v

UPLOAD_COLUMNS = ("id", "input_text", "output_text", "prompt")
"""Columns of every uploaded split table (all STRING)."""


def ref(project: str, dataset: str, name: str) -> str:
    """A backticked ``project.dataset.name`` after validating each part."""
    v.check_project("project", project)
    v.check_name("dataset", dataset)
    v.check_name("table/model name", name)
    return f"`{project}.{dataset}.{name}`"


def connection_clause(connection: str) -> str:
    v.check_connection("connection", connection)
    return "DEFAULT" if connection == "DEFAULT" else f"`{connection}`"


def create_base_model(model: str, connection: str, endpoint: str) -> str:
    """The untuned remote model over a hosted Gemini endpoint."""
    return (f"CREATE OR REPLACE MODEL {model}\n"
            f"REMOTE WITH CONNECTION {connection_clause(connection)}\n"
            f"OPTIONS(endpoint = {v.sql_string(v.check_endpoint('endpoint', endpoint), 'endpoint')})")


@dataclass(frozen=True)
class TuneOptions:
    """The OPTIONS of a supervised-tuning CREATE MODEL."""

    endpoint: str
    max_iterations: int
    learning_rate_multiplier: float
    data_split_method: str = "NO_SPLIT"
    data_split_eval_fraction: Optional[float] = None
    evaluation_task: str = "CLASSIFICATION"
    """``eval.task``'s BigQuery name (:func:`ftlab_bqml.tuning.plan`) or UNSPECIFIED."""


def create_tuned_model(model: str, connection: str, train_table: str, opt: TuneOptions) -> str:
    """Supervised tuning: ``AS SELECT prompt AS prompt, output_text AS label`` from the train table."""
    lines = [
        f"endpoint = {v.sql_string(v.check_endpoint('endpoint', opt.endpoint), 'endpoint')}",
        f"max_iterations = {v.sql_number(v.check_number('max_iterations', opt.max_iterations, lo=1, integer=True))}",
        f"learning_rate_multiplier = {v.sql_number(float(opt.learning_rate_multiplier), 'learning_rate_multiplier')}",
        f"data_split_method = {v.sql_string(v.check_choice('data_split_method', opt.data_split_method, v.SPLIT_METHODS))}",
    ]
    if opt.data_split_eval_fraction is not None:
        frac = v.check_number("data_split_eval_fraction", float(opt.data_split_eval_fraction), lo=0, hi=1)
        lines.append(f"data_split_eval_fraction = {v.sql_number(frac)}")
    lines += [
        f"evaluation_task = {v.sql_string(v.check_choice('evaluation_task', opt.evaluation_task, v.EVAL_TASKS))}",
        "prompt_col = 'prompt'",
        "input_label_cols = ['label']",
    ]
    body = ",\n  ".join(lines)
    return (f"CREATE OR REPLACE MODEL {model}\n"
            f"REMOTE WITH CONNECTION {connection_clause(connection)}\n"
            f"OPTIONS(\n  {body})\n"
            f"AS SELECT prompt AS prompt, output_text AS label FROM {train_table}")


def _gen_struct(max_output_tokens: int, temperature: float, top_p: float) -> str:
    v.check_number("max_output_tokens", max_output_tokens, lo=1, hi=8192, integer=True)
    v.check_number("temperature", float(temperature), lo=0, hi=1)
    v.check_number("top_p", float(top_p), lo=0, hi=1)
    return (f"{v.sql_number(int(max_output_tokens))} AS max_output_tokens, "
            f"{v.sql_number(float(temperature))} AS temperature, {v.sql_number(float(top_p))} AS top_p")


GENERATE_COLUMNS = {"ai": ("result", "status"),
                    "ml": ("ml_generate_text_llm_result", "ml_generate_text_status")}
"""(text column, status column) of each generate function's output (``backend.generate_function``)."""


def generate_text(model: str, table: str, max_output_tokens: int, temperature: float, top_p: float,
                  only_ids: bool = False, function: str = "ai") -> str:
    """Predictions for every row (or, for retries, the rows in query parameter ``@ids``), with the
    prompt each row was given (both functions pass their input columns through), so the run records
    the text BigQuery actually sent. ``function``: ``ai`` (``AI.GENERATE_TEXT``, Google's recommended
    function) or ``ml`` (``ML.GENERATE_TEXT``, which also needs ``flatten_json_output`` to return text)."""
    function = v.check_choice("generate_function", function, v.GENERATE_FUNCTIONS).lower()
    text_col, status_col = GENERATE_COLUMNS[function]
    where = " WHERE id IN UNNEST(@ids)" if only_ids else ""
    flatten = ", TRUE AS flatten_json_output" if function == "ml" else ""
    return (f"SELECT id, prompt, {text_col}, {status_col}\n"
            f"FROM {function.upper()}.GENERATE_TEXT(\n"
            f"  MODEL {model},\n"
            f"  (SELECT id, prompt FROM {table}{where}),\n"
            f"  STRUCT({_gen_struct(max_output_tokens, temperature, top_p)}{flatten}))")


def evaluate_input_columns(tuned: bool) -> tuple[str, str]:
    """(prompt column, label column) that ``ML.EVALUATE`` expects for this kind of model."""
    return ("prompt", "label") if tuned else ("input_text", "output_text")


def evaluate(model: str, table: str, tuned: bool, task: str, max_output_tokens: int,
             temperature: float, top_p: float) -> str:
    """``ML.EVALUATE`` over a split table with the column names the model kind requires; ``task`` is
    the task type (``CLASSIFICATION``, ``TEXT_GENERATION``, ``SUMMARIZATION``, ``QUESTION_ANSWERING``),
    written in lower case as Google's tutorials do. The label column holds a generation task's
    reference text (question answering: its first acceptable answer)."""
    prompt_col, label_col = evaluate_input_columns(tuned)
    task = v.check_choice("task_type", task, v.TASK_TYPES)
    return ("SELECT *\n"
            "FROM ML.EVALUATE(\n"
            f"  MODEL {model},\n"
            f"  (SELECT prompt AS {prompt_col}, output_text AS {label_col} FROM {table}),\n"
            f"  STRUCT({v.sql_string(task.lower())} AS task_type, "
            f"{_gen_struct(max_output_tokens, temperature, top_p)}))")


def load_data(raw_table: str, uri: str) -> str:
    """Load a gs:// NDJSON split (id, input_text, output_text) into a raw table."""
    return (f"LOAD DATA OVERWRITE {raw_table} (id STRING, input_text STRING, output_text STRING)\n"
            f"FROM FILES(format = 'NEWLINE_DELIMITED_JSON', uris = [{v.sql_string(v.check_gcs_uri('gcs uri', uri))}])")


def build_prompt_table(table: str, raw_table: str, truncation_side: str = "right") -> str:
    """The split table with a ``prompt`` column, from parameters @prompt_prefix, @prompt_suffix and
    @max_input_chars (0 = no limit): the same text ``Prompt.render`` produces."""
    cut = ("SUBSTR(input_text, 1, @max_input_chars)" if truncation_side == "right"
           else "SUBSTR(input_text, LENGTH(input_text) - @max_input_chars + 1)")
    return (f"CREATE OR REPLACE TABLE {table} AS\n"
            "SELECT id, input_text, output_text, CONCAT(@prompt_prefix, "
            f"IF(@max_input_chars > 0 AND LENGTH(input_text) > @max_input_chars, {cut}, input_text), "
            "@prompt_suffix) AS prompt\n"
            f"FROM {raw_table}")


def prompt_pieces(prompt) -> tuple[str, str]:
    """Split the host prompt's rendered template around the text: (prefix, suffix)."""
    marker = "\x00FTLAB_TEXT\x00"
    rendered = prompt.template.format(labels=prompt.label_block, text=marker)
    if rendered.count(marker) != 1:
        raise ValueError("prompt.template must contain {text} exactly once for gs:// sources")
    prefix, suffix = rendered.split(marker)
    return prefix, suffix
