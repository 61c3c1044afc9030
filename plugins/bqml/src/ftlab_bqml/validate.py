"""Identifier and literal checks shared by the config schema and the SQL templates (stdlib only).

Everything that ends up inside SQL text and is not a query parameter passes through here. A value
that could close a literal (``'``, ``\\``, newline) or an identifier (`````, ``.``) is rejected with
the config key in the message, never silently escaped away.
"""

from __future__ import annotations

import math
import re

NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
"""Dataset, table and model names."""
PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$")
"""Google Cloud project ids (6-30 in practice; the service allows up to 63)."""
LOCATION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,40}$")
CONNECTION_RE = re.compile(r"^([a-z][a-z0-9-]{4,61}[a-z0-9])\.([A-Za-z][A-Za-z0-9-]{1,40})\.([A-Za-z0-9_-]{1,1024})$")
ENDPOINT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,1023}$")
GCS_URI_RE = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}/[A-Za-z0-9._/*=+-]{1,1024}$")
SPLIT_METHODS = ("AUTO_SPLIT", "RANDOM", "CUSTOM", "SEQ", "NO_SPLIT")
GENERATE_FUNCTIONS = ("AI", "ML")
"""AI.GENERATE_TEXT or ML.GENERATE_TEXT."""
TASK_TYPES = ("TEXT_GENERATION", "CLASSIFICATION", "SUMMARIZATION", "QUESTION_ANSWERING")
"""ML.EVALUATE's task_type values."""
EVAL_TASKS = TASK_TYPES + ("UNSPECIFIED",)
"""EVALUATION_TASK values of a tuning CREATE MODEL."""


class BqmlConfigError(ValueError):
    """A ``backend.*`` value is invalid or could break out of a SQL literal or identifier."""


def _fail(key: str, value, why: str):
    raise BqmlConfigError(f"backend.{key}={value!r} is invalid: {why}")


def _matching(key: str, value, pattern, why: str) -> str:
    """``value`` if it is a string that fully matches ``pattern``, else a BqmlConfigError."""
    if not isinstance(value, str) or not pattern.match(value):
        _fail(key, value, why)
    return value


def check_name(key: str, value) -> str:
    """Dataset/table/model name: letters, digits and ``_`` only."""
    return _matching(key, value, NAME_RE,
                     "use only letters, digits and '_' (no quotes, dots, backticks or spaces)")


def check_project(key: str, value) -> str:
    return _matching(key, value, PROJECT_RE,
                     "a project id is 6-63 lower-case letters, digits or '-', starting with a letter")


def check_location(key: str, value) -> str:
    return _matching(key, value, LOCATION_RE,
                     "a BigQuery location such as US, EU or us-central1")


def check_connection(key: str, value) -> str:
    """``DEFAULT`` or ``project.region.connection_id``."""
    if value == "DEFAULT":
        return value
    return _matching(key, value, CONNECTION_RE,
                     "use DEFAULT or project.region.connection_id (letters, digits, '-', '_')")


def check_endpoint(key: str, value) -> str:
    """A model name (``gemini-2.0-flash-001``) or an https URL; goes into a string literal."""
    return _matching(key, value, ENDPOINT_RE,
                     "a model name or URL made of letters, digits and ._@:/- (no quotes)")


def check_gcs_uri(key: str, value) -> str:
    return _matching(key, value, GCS_URI_RE,
                     "a gs://bucket/path URI without quotes, spaces or backslashes")


def check_choice(key: str, value, choices) -> str:
    if not isinstance(value, str) or value.upper() not in choices:
        _fail(key, value, f"one of {', '.join(choices)}")
    return value.upper()


def check_split_method(key: str, value) -> str:
    """A DATA_SPLIT_METHOD ftlab can send: CUSTOM and SEQ need a DATA_SPLIT_COL it has no key for."""
    method = check_choice(key, value, SPLIT_METHODS)
    if method in ("CUSTOM", "SEQ"):
        _fail(key, value, f"{method} needs a DATA_SPLIT_COL column, which ftlab does not upload; use "
              "RANDOM (train.holdout_fraction), AUTO_SPLIT or NO_SPLIT")
    return method


def check_number(key: str, value, lo=None, hi=None, integer=False, lo_open=False):
    """A finite int/float within bounds (rendered with repr, so it cannot carry SQL)."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        _fail(key, value, "an integer" if integer else "a finite number")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        _fail(key, value, f"must be {'>' if lo_open else '>='} {lo}")
    if hi is not None and value > hi:
        _fail(key, value, f"must be <= {hi}")
    return value


def sql_string(value: str, key: str = "value") -> str:
    """A strictly checked single-quoted literal: no quote, backslash or control character at all."""
    if not isinstance(value, str) or any(c in value for c in "'\"\\`") or any(ord(c) < 32 for c in value):
        _fail(key, value, "quotes, backslashes, backticks and control characters are not allowed")
    return f"'{value}'"


def sql_number(value, key: str = "value") -> str:
    """An int or float literal (``repr`` of a checked finite number)."""
    check_number(key, value)
    return repr(int(value)) if isinstance(value, int) else repr(float(value))
