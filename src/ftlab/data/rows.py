"""The row checks every format shares: one row (a dict of cells) → :class:`Example`, or why not.

A reader (:mod:`ftlab.data.formats`, :mod:`ftlab.data.bigquery`) turns a file or a table into
:class:`RawRow` values; :class:`RowChecker` applies the same checks to each, whatever it came from.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Optional, Union

from ftlab.config.data import AcceptableSource, DataConfig
from ftlab.contract import Example
from ftlab.paths import resolve


class DataError(ValueError):
    """A data file or table is missing, or a row is invalid."""


class BadRow(Exception):
    """Why one row cannot become an example: a short ``reason`` code and the message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class RawRow:
    """One row as a reader found it, before the checks."""

    index: int
    """0-based line (JSONL) or data row (other formats): the number in the example id
    ``<split>-<index>`` and the ``line`` an acceptable-labels index joins on."""
    number: int
    """1-based line (JSONL, CSV, TSV: the line the row starts on) or row (Parquet, tables)."""
    where: str
    """``file:line`` or ``file:row N`` (``project.dataset.table:row N``), for messages."""
    raw: str
    """The line as read (JSONL; a CSV row of the wrong width: its cells as JSON); empty for other
    formats, whose cells the skipped-rows log shows as JSON (:func:`ftlab.data.formats.raw_text`)."""
    value: Union[dict, BadRow]
    """The cells by column name, or the reason the reader could not make a row of it."""


@dataclass(frozen=True)
class SkippedRow:
    """A row left out under ``data.on_error=skip``."""

    line: int
    """1-based line in the file (JSONL, CSV, TSV) or 1-based row (Parquet, tables)."""
    reason: str
    """Short code: invalid_json, not_an_object, wrong_field_count, missing_key, wrong_type, empty_text,
    empty_label, unknown_label, no_acceptable_labels, duplicate_id."""
    message: str
    """The error the row would have raised under ``on_error=fail``."""
    raw: str
    """The row as read (truncated to 2,000 characters)."""
    where: str = ""
    """``file:line`` or ``file:row N``."""


def type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def split_labels(value, sep: str) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(s.strip() for s in str(value).split(sep) if s.strip())


def required_columns(cfg: DataConfig, target: str = "label") -> dict[str, str]:
    """``{column: config key}`` of every column a row must have (``target``: see :class:`RowChecker`)."""
    if target == "label":
        cols = {cfg.text_column: "data.text_column", cfg.label_column: "data.label_column"}
        if cfg.acceptable.source == AcceptableSource.column:
            cols.setdefault(cfg.acceptable.column, "data.acceptable.column")
    else:
        col, key = (cfg.target_column, "data.target_column") if cfg.target_column else \
            (cfg.label_column, "data.label_column")
        cols = {cfg.text_column: "data.text_column", col: key}
    if cfg.id_column:
        cols.setdefault(cfg.id_column, "data.id_column")
    return cols


def missing_columns_error(key: str, name: str, columns: dict[str, str], have: list[str]) -> Optional[DataError]:
    """A file-level error when a header (or schema) lacks a required column, else None."""
    import difflib

    for col, ckey in columns.items():
        if col not in have:
            close = difflib.get_close_matches(col, have, n=1)
            hint = f"; did you mean {close[0]!r}? (set {ckey}={close[0]})" if close else ""
            return DataError(f"{key}: {name} has no column {col!r} ({ckey}); its columns are "
                             f"{have}{hint}")
    return None


def acceptable_index(cfg: DataConfig) -> dict[tuple[str, int], tuple[str, ...]]:
    acc = cfg.acceptable
    path = resolve(acc.index_path)
    if not path.is_file():
        raise DataError(f"data.acceptable.index_path: file not found: {path}")
    out: dict[tuple[str, int], tuple[str, ...]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = (acc.index_split_column, acc.index_line_column, acc.index_labels_column)
        missing = [c for c in cols if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: column {missing[0]!r} (from data.acceptable) not in header "
                            f"{reader.fieldnames}")
        for n, row in enumerate(reader, start=2):
            try:
                key = (row[cols[0]], int(row[cols[1]]))
            except ValueError:
                raise DataError(f"{path}:{n}: {cols[1]!r} is not an integer: {row[cols[1]]!r}")
            out[key] = tuple(s.strip() for s in row[cols[2]].split(acc.separator) if s.strip())
    return out


class RowChecker:
    """The checks of one split. ``labels=None`` accepts any label (``data.labels=auto`` reading
    the training file, whose labels become the set). ``target``: ``label`` (classification),
    ``text`` (one reference text: text generation, summarization) or ``answers`` (question
    answering: a list of acceptable answers, or a string split on ``data.acceptable.separator``)."""

    def __init__(self, cfg: DataConfig, labels: Optional[set], index: Optional[dict], target: str = "label") -> None:
        self.cfg, self.labels, self.index, self.target = cfg, labels, index, target
        self.columns = [(c, k) for c, k in required_columns(cfg, target).items()
                        if k != "data.acceptable.column"]
        """Checked here; the acceptable-labels column is named with its own message in ``_acceptable``."""

    def example(self, split: str, row: RawRow) -> Example:
        """One row → Example, or :class:`BadRow` saying why not."""
        cfg, value = self.cfg, row.value
        if isinstance(value, BadRow):
            raise value
        for col, ckey in self.columns:
            if col not in value:
                raise BadRow("missing_key", f"missing key {col!r} ({ckey}); the row has {sorted(value)}")
        if self.target != "label":
            return self._generation(split, row)
        text, label = value[cfg.text_column], value[cfg.label_column]
        for col, v in ((cfg.text_column, text), (cfg.label_column, label)):
            if not isinstance(v, str):
                raise BadRow("wrong_type", f"{col!r} must be a string, got {type_name(v)}")
        if not text.strip():
            raise BadRow("empty_text", f"empty {cfg.text_column!r} (an empty input cannot be classified)")
        if not label.strip():
            raise BadRow("empty_label", f"empty {cfg.label_column!r} (every row needs its label)")
        if self.labels is not None and label not in self.labels:
            raise BadRow("unknown_label", f"label {label!r} is not in data.labels "
                                          f"({len(self.labels)} labels"
                                          f"{' from the training file' if cfg.labels_auto else ' configured'})")
        return Example(id=self._row_id(split, row), text=text, label=label,
                       acceptable=self._acceptable(split, row), source=row.where)

    def _row_id(self, split: str, row: RawRow) -> str:
        """``data.id_column``'s value (a non-empty string or integer), else ``<split>-<index>``."""
        cfg = self.cfg
        if not cfg.id_column:
            return f"{split}-{row.index}"
        v = row.value[cfg.id_column]
        if isinstance(v, bool) or not isinstance(v, (str, int)) or not str(v).strip():
            raise BadRow("wrong_type", f"{cfg.id_column!r} (data.id_column) must be a non-empty "
                                       f"string or integer, got {type_name(v)} {v!r}")
        return str(v)

    def _generation(self, split: str, row: RawRow) -> Example:
        """A generation row: its input and its reference text(s); no label."""
        cfg, value = self.cfg, row.value
        col = cfg.target_column or cfg.label_column
        key = "data.target_column" if cfg.target_column else "data.label_column"
        text, target = value[cfg.text_column], value[col]
        if not isinstance(text, str):
            raise BadRow("wrong_type", f"{cfg.text_column!r} must be a string, got {type_name(text)}")
        if not text.strip():
            raise BadRow("empty_text", f"empty {cfg.text_column!r} (an empty input has nothing to answer from)")
        if self.target == "answers":
            if not isinstance(target, (str, list, tuple)):
                raise BadRow("wrong_type", f"{col!r} ({key}) must be a list of answers or a string, "
                                           f"got {type_name(target)}")
            refs = split_labels(target, cfg.acceptable.separator)
            if not refs:
                raise BadRow("no_answers", f"{col!r} ({key}) lists no answer (question answering needs at least "
                                           f"one acceptable answer per row)")
        else:
            if not isinstance(target, str):
                raise BadRow("wrong_type", f"{col!r} ({key}) must be a string (the reference text), "
                                           f"got {type_name(target)}")
            if not target.strip():
                raise BadRow("empty_target", f"empty {col!r} ({key}: every row needs its reference text)")
            refs = (target.strip(),)
        return Example(id=self._row_id(split, row), text=text, label="", source=row.where, references=refs)

    def _acceptable(self, split: str, row: RawRow) -> tuple[str, ...]:
        cfg, value = self.cfg, row.value
        acceptable: tuple[str, ...] = ()
        if cfg.acceptable.source == AcceptableSource.column:
            if cfg.acceptable.column not in value:
                raise BadRow("missing_key", f"missing key {cfg.acceptable.column!r} (data.acceptable.column)")
            cell = value[cfg.acceptable.column]
            acceptable = () if cell is None else split_labels(cell, cfg.acceptable.separator)
        elif self.index is not None:
            if (split, row.index) not in self.index:
                raise BadRow("no_acceptable_labels", f"no row for split={split!r} line={row.index} in "
                                                     f"data.acceptable.index_path")
            acceptable = self.index[(split, row.index)]
        if acceptable:
            label = value[cfg.label_column]
            if self.labels is not None:
                acceptable = tuple(a for a in acceptable if a in self.labels)
            if label not in acceptable:
                acceptable = (label, *acceptable)
        return acceptable
