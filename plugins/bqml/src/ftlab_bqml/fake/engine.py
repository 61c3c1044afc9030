"""The fake's SQL "engine": recognises the statement kinds ``ftlab_bqml.sql`` emits.

A statement is first brought to one layout (:func:`normalise`: whitespace, a trailing ``;``, spaces
inside parentheses and before a function's parenthesis), and keywords match in any case, so the
same statements written as Google's documentation writes them are recognised too (tested against
hand-written examples, not only the generator); documented defaults apply to omitted generation
parameters. Anything else is rejected as BigQuery would reject a statement it cannot run (``invalidQuery``).
Tables and models live in memory; ``execute`` returns a :class:`Result` whose ``effect`` (e.g.
creating the tuned model) the server applies only when the job reaches DONE.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ftlab_bqml.fake.models import (GENERATION_COLUMNS, BaseModel, TunedModel, classification_rows,
                                    generation_rows, split_rows)

REF = r"`([a-z][a-z0-9-]+)\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)`"
CONN = r"(DEFAULT|`[a-z][a-z0-9-]+\.[A-Za-z0-9-]+\.[A-Za-z0-9_-]+`)"
NUM = r"([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
GEN_STRUCT = rf"{NUM} AS max_output_tokens,\s*{NUM} AS temperature,\s*{NUM} AS top_p"
DEFAULT_MAX_OUTPUT_TOKENS = 1024
"""What BigQuery uses when a statement sets no ``max_output_tokens`` (ML.GENERATE_TEXT and ML.EVALUATE)."""
STATEMENTS = {
    "create_model": re.compile(
        rf"^CREATE OR REPLACE MODEL {REF}\s+REMOTE WITH CONNECTION {CONN}\s+"
        r"OPTIONS\(endpoint = '([A-Za-z0-9._@:/-]+)'\)$", re.I),
    "create_tuned_model": re.compile(
        rf"^CREATE OR REPLACE MODEL {REF}\s+REMOTE WITH CONNECTION {CONN}\s+OPTIONS\(\s*(.*?)\)\s+"
        rf"AS SELECT prompt AS prompt, output_text AS label FROM {REF}$", re.S | re.I),
    "generate_text": re.compile(
        r"^SELECT id, prompt, ([a-z_]+), ([a-z_]+)\s+FROM (AI|ML)\.GENERATE_TEXT\(\s*"
        rf"MODEL {REF},\s*\(SELECT id, prompt FROM {REF}( WHERE id IN UNNEST\(@ids\))?\),\s*"
        rf"STRUCT\((?:{GEN_STRUCT}(?:, )?)?(TRUE AS flatten_json_output)?\)\)$", re.I),
    "evaluate": re.compile(
        rf"^SELECT \*\s+FROM ML\.EVALUATE\(\s*MODEL {REF},\s*"
        rf"\(SELECT prompt AS ([a-z_]+), output_text(?: AS ([a-z_]+))? FROM {REF}\),\s*"
        rf"STRUCT\('([a-z_]+)' AS task_type(?:, {GEN_STRUCT})?\)\)$", re.I),
    "load_data": re.compile(
        rf"^LOAD DATA OVERWRITE {REF} \(id STRING, input_text STRING, output_text STRING\)\s+"
        r"FROM FILES\(format = 'NEWLINE_DELIMITED_JSON', uris = \['(gs://[^']+)'\]\)$", re.I),
    "build_prompt_table": re.compile(
        rf"^CREATE OR REPLACE TABLE {REF} AS\s+SELECT id, input_text, output_text, CONCAT\(@prompt_prefix, "
        r"IF\(@max_input_chars > 0 AND LENGTH\(input_text\) > @max_input_chars, "
        r"(SUBSTR\(input_text, 1, @max_input_chars\)|SUBSTR\(input_text, LENGTH\(input_text\) - "
        rf"@max_input_chars \+ 1\)), input_text\), @prompt_suffix\) AS prompt\s+FROM {REF}$", re.I),
}
OPTION = re.compile(r"(\w+) = ('[^']*'|\[[^\]]*\]|" + NUM + r")")
STATEMENT_TYPES = {"create_model": "CREATE_MODEL", "create_tuned_model": "CREATE_MODEL",
                   "generate_text": "SELECT", "evaluate": "SELECT", "load_data": "LOAD_DATA",
                   "build_prompt_table": "CREATE_TABLE_AS_SELECT"}
RESOURCE_EXHAUSTED = "A retryable error occurred: RESOURCE EXHAUSTED error from {endpoint}"
OUTPUT_COLUMNS = {"AI": ("result", "status"), "ML": ("ml_generate_text_llm_result", "ml_generate_text_status")}
"""Text and status columns of each generate function (ML.GENERATE_TEXT's only with flatten_json_output)."""


_FUNCS = re.compile(r"\b(OPTIONS|STRUCT|FILES|ML\.EVALUATE|(?:ML|AI)\.GENERATE_TEXT|CONCAT|IF|SUBSTR|LENGTH|UNNEST)\s+\(", re.I)


def normalise(sql: str) -> str:
    """One layout for a statement: whitespace runs as one space, no space inside parentheses or
    before a function's, ``a = b`` and ``a, b`` spaced alike, no trailing ``;`` (string literals kept)."""
    parts = re.split(r"('(?:[^'\\]|\\.)*')", sql.strip().rstrip(";").strip())
    for i in range(0, len(parts), 2):  # outside string literals
        t = re.sub(r"\s+", " ", parts[i])
        t = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", t))
        t = re.sub(r"\s*,\s*", ", ", t)
        t = re.sub(r"(?<![<>!=])\s*=\s*(?!=)", " = ", t)
        parts[i] = _FUNCS.sub(lambda m: m.group(1) + "(", t)
    return "".join(parts).strip()


class SqlError(Exception):
    """A job error: ``reason`` and ``message`` as BigQuery puts them in ``errorResult``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass
class Table:
    schema: list  # [(name, type)]
    rows: list


@dataclass
class Result:
    kind: str
    statement_type: str
    schema: Optional[list] = None
    rows: list = field(default_factory=list)
    bytes_processed: int = 0
    effect: Optional[Callable[[], None]] = None
    target: str = ""


def _key(project: str, dataset: str, name: str) -> str:
    return f"{project}.{dataset}.{name}"


class Engine:
    """In-memory tables and models plus the statement interpreter."""

    def __init__(self, faults, gcs_files: Optional[dict] = None) -> None:
        self.tables: dict[str, Table] = {}
        self.models: dict[str, dict] = {}
        self.faults = faults
        self.gcs_files = dict(gcs_files or {})

    def classify(self, sql: str) -> tuple[str, re.Match]:
        text = normalise(sql)
        for kind, pattern in STATEMENTS.items():
            m = pattern.match(text)
            if m:
                return kind, m
        raise SqlError("invalidQuery", "Syntax error: the ftlab fake BigQuery does not support this "
                       f"statement: {' '.join(text.split())[:120]!r} at [1:1]")

    def table(self, project, dataset, name) -> Table:
        key = _key(project, dataset, name)
        if key not in self.tables:
            raise SqlError("notFound", f"Not found: Table {project}:{dataset}.{name} was not found in location US")
        return self.tables[key]

    def model(self, project, dataset, name) -> dict:
        key = _key(project, dataset, name)
        if key not in self.models:
            raise SqlError("notFound", f"Not found: Model {project}:{dataset}.{name}")
        return self.models[key]

    @staticmethod
    def _bytes(table: Table, cols) -> int:
        return sum(len(str(r.get(c) or "").encode()) for r in table.rows for c in cols)

    def execute(self, sql: str, params: dict, dry_run: bool = False) -> Result:
        kind, m = self.classify(sql)
        result = getattr(self, f"_{kind}")(m, params, dry_run)
        if dry_run:
            result.effect, result.rows = None, []
        return result

    # -- statements ------------------------------------------------------------------------------
    def _create_model(self, m, params, dry_run) -> Result:
        p, d, name, conn, endpoint = m.groups()
        model = {"kind": "base", "endpoint": endpoint, "connection": conn.strip("`"),
                 "impl": BaseModel(endpoint), "options": {}}
        effect = lambda: self.models.__setitem__(_key(p, d, name), model)  # noqa: E731
        return Result("create_model", "CREATE_MODEL", effect=effect, target=_key(p, d, name))

    def _create_tuned_model(self, m, params, dry_run) -> Result:
        p, d, name, conn, body, tp, td, tt = m.groups()
        options = {}
        for key, val, _num in OPTION.findall(body):
            options[key.lower()] = json.loads(val.replace("'", '"')) if val[:1] in "'[" else float(val)
        if set(options) - {"endpoint", "max_iterations", "learning_rate_multiplier", "data_split_method",
                           "data_split_eval_fraction", "evaluation_task", "prompt_col", "input_label_cols"}:
            raise SqlError("invalidQuery", f"Unknown CREATE MODEL option in {sorted(options)}")
        if options.get("prompt_col") != "prompt" or options.get("input_label_cols") != ["label"]:
            raise SqlError("invalidQuery", "prompt_col/input_label_cols must name the AS SELECT columns")
        table = self.table(tp, td, tt)
        kept = split_rows(table.rows, str(options.get("data_split_method", "AUTO_SPLIT")).upper(),
                          options.get("data_split_eval_fraction"))
        if len(kept) < 10:
            raise SqlError("invalidQuery", f"Supervised tuning needs at least 10 training rows after the data "
                           f"split; got {len(kept)} of {len(table.rows)}")
        options["epochs"] = math.ceil(options.get("max_iterations", len(table.rows)) / len(table.rows))
        options["training_rows"] = len(kept)
        rows = [(r["prompt"], r["output_text"]) for r in kept]
        endpoint = options["endpoint"]
        model = {"kind": "tuned", "endpoint": endpoint, "connection": conn.strip("`"),
                 "impl": TunedModel(endpoint, rows, options), "options": options}
        effect = lambda: self.models.__setitem__(_key(p, d, name), model)  # noqa: E731
        return Result("create_tuned_model", "CREATE_MODEL", bytes_processed=self._bytes(table, ["prompt", "output_text"]),
                      effect=None if dry_run else effect, target=_key(p, d, name))

    def _generate_text(self, m, params, dry_run) -> Result:
        text_col, status_col, fn, p, d, name, tp, td, tt, only, max_tokens, _temp, _top_p, flatten = m.groups()
        if fn == "AI" and flatten:
            raise SqlError("invalidQuery", "flatten_json_output is not an argument of AI.GENERATE_TEXT")
        columns = OUTPUT_COLUMNS[fn] if fn == "AI" or flatten else ("ml_generate_text_result", "ml_generate_text_status")
        for col in (text_col, status_col):
            if col not in columns:
                raise SqlError("invalidQuery", f"Unrecognized name: {col} (the output of {fn}.GENERATE_TEXT has "
                               f"{', '.join(columns)}) at [1:1]")
        model, table = self.model(p, d, name), self.table(tp, td, tt)
        rows = table.rows
        if only:
            ids = set(params.get("ids") or [])
            rows = [r for r in rows if r["id"] in ids]
        out = []
        if not dry_run:
            for r in rows:
                rid = str(r["id"])
                if self.faults.row_fails(rid):
                    out.append({"id": rid, "prompt": r["prompt"], text_col: None,
                                status_col: RESOURCE_EXHAUSTED.format(endpoint=model["endpoint"])})
                    continue
                answer = model["impl"].answer(r["prompt"])[: 4 * int(max_tokens or DEFAULT_MAX_OUTPUT_TOKENS)]
                out.append({"id": rid, "prompt": r["prompt"], text_col: answer, status_col: ""})
        schema = [("id", "STRING"), ("prompt", "STRING"), (text_col, "STRING"), (status_col, "STRING")]
        return Result("generate_text", "SELECT", schema=schema, rows=out,
                      bytes_processed=self._bytes(table, ["id", "prompt"]))

    def _evaluate(self, m, params, dry_run) -> Result:
        p, d, name, prompt_col, label_col, tp, td, tt, task, max_tokens, _t, _p = m.groups()
        label_col = label_col or "output_text"
        max_tokens = max_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        task = task.lower()
        model, table = self.model(p, d, name), self.table(tp, td, tt)
        want = ("prompt", "label") if model["kind"] == "tuned" else ("input_text", "output_text")
        if (prompt_col, label_col) != want:
            raise SqlError("invalidQuery", f"The input data to ML.EVALUATE of a{' tuned' if want[0] == 'prompt' else 'n untuned'}"
                           f" remote model must have columns {want[0]} and {want[1]}; got {prompt_col}, {label_col}")
        task = task.upper()
        if task != "CLASSIFICATION" and task not in GENERATION_COLUMNS:
            raise SqlError("invalidQuery", f"Invalid task_type {task!r}: use TEXT_GENERATION, CLASSIFICATION, "
                           "SUMMARIZATION or QUESTION_ANSWERING")
        if task == "CLASSIFICATION":
            schema = [("label", "STRING"), ("precision", "FLOAT"), ("recall", "FLOAT"), ("f1_score", "FLOAT"),
                      ("evaluation_status", "STRING")]
        else:
            schema = [(c, "FLOAT") for c in GENERATION_COLUMNS[task]] + [("evaluation_status", "STRING")]
        rows = []
        if not dry_run:
            truth = [r["output_text"] or "" for r in table.rows]
            pred = [model["impl"].answer(r["prompt"])[: 4 * int(max_tokens)] for r in table.rows]
            rows = (classification_rows(truth, pred, len(truth)) if task == "CLASSIFICATION"
                    else generation_rows(task, truth, pred, len(truth)))
        return Result("evaluate", "SELECT", schema=schema, rows=rows,
                      bytes_processed=self._bytes(table, ["prompt", "output_text"]))

    def _load_data(self, m, params, dry_run) -> Result:
        p, d, name, uri = m.groups()
        if uri not in self.gcs_files:
            raise SqlError("notFound", f"Not found: URI {uri}")
        path = Path(self.gcs_files[uri])
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = [{"id": str(r.get("id")), "input_text": r.get("input_text"), "output_text": r.get("output_text")}
                for r in rows]
        schema = [("id", "STRING"), ("input_text", "STRING"), ("output_text", "STRING")]
        effect = lambda: self.tables.__setitem__(_key(p, d, name), Table(schema, rows))  # noqa: E731
        return Result("load_data", "LOAD_DATA", effect=None if dry_run else effect, target=_key(p, d, name))

    def _build_prompt_table(self, m, params, dry_run) -> Result:
        p, d, name, cut, rp, rd, rn = m.groups()
        raw = self.table(rp, rd, rn)
        prefix, suffix = params.get("prompt_prefix", ""), params.get("prompt_suffix", "")
        n = int(params.get("max_input_chars") or 0)
        rows = []
        for r in raw.rows:
            text = r["input_text"] or ""
            if n > 0 and len(text) > n:
                text = text[:n] if ", 1, " in cut else text[-n:]
            rows.append({**r, "prompt": f"{prefix}{text}{suffix}"})
        schema = raw.schema + [("prompt", "STRING")]
        effect = lambda: self.tables.__setitem__(_key(p, d, name), Table(schema, rows))  # noqa: E731
        return Result("build_prompt_table", "CREATE_TABLE_AS_SELECT",
                      bytes_processed=self._bytes(raw, ["id", "input_text", "output_text"]),
                      effect=None if dry_run else effect, target=_key(p, d, name))
