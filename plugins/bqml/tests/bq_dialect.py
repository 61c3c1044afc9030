"""sqlglot's BigQuery dialect plus the two BigQuery ML functions it does not parse.

sqlglot 30.30 parses ``ML.GENERATE_TEXT`` but fails on ``ML.EVALUATE`` and ``ML.TRAINING_INFO``
("Expecting )"); they are added here the way sqlglot adds ``GENERATE_TEXT`` (its own ``_parse_generate``
and ``_ml_sql`` helpers, private, hence the exact pin in the plugin's dev extra). Never parse with
``error_level=IGNORE``: it silently mangles what it does not know.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.bigquery import BigQuery


class MLEvaluate(exp.Expression, exp.Func):
    arg_types = {"this": True, "expression": False, "params_struct": False}
    _sql_names = ["EVALUATE"]


class MLTrainingInfo(exp.Expression, exp.Func):
    arg_types = {"this": True, "expression": False, "params_struct": False}
    _sql_names = ["TRAINING_INFO"]


class BigQueryML(BigQuery):
    class Parser(BigQuery.Parser):
        FUNCTION_PARSERS = {**BigQuery.Parser.FUNCTION_PARSERS,
                            "EVALUATE": lambda self: self._parse_generate(MLEvaluate),
                            "TRAINING_INFO": lambda self: self._parse_generate(MLTrainingInfo)}

    class Generator(BigQuery.Generator):
        TRANSFORMS = {**BigQuery.Generator.TRANSFORMS,
                      MLEvaluate: lambda self, e: self._ml_sql(e, "EVALUATE"),
                      MLTrainingInfo: lambda self, e: self._ml_sql(e, "TRAINING_INFO")}


def parse(sql: str) -> exp.Expression:
    """One BigQuery statement, parsed strictly (a syntax error raises ``sqlglot.errors.ParseError``)."""
    import sqlglot
    from sqlglot.errors import ErrorLevel

    trees = sqlglot.parse(sql, read=BigQueryML, error_level=ErrorLevel.RAISE)
    assert len(trees) == 1 and trees[0] is not None, f"expected one statement: {sql!r}"
    return trees[0]
