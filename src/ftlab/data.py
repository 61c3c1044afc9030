"""Load split files into :class:`ftlab.contract.Example` rows, checking every row.

Errors name the config key, the file and the 1-based line, and are raised before any model loads.
With ``data.on_error=skip`` a bad row is skipped instead and recorded on the split
(:attr:`Split.skipped`: line, reason, message, the raw line); the runner logs the counts per reason
and the skipped lines, and warns. Files may start with a UTF-8 BOM and use CRLF line endings.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ftlab.config import AcceptableSource, DataConfig
from ftlab.config.data import OnError
from ftlab.contract import Example
from ftlab.paths import resolve


class DataError(ValueError):
    """A data file is missing or a row is invalid."""


class _BadRow(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class SkippedRow:
    """A row left out under ``data.on_error=skip``."""

    line: int
    """1-based line in the file."""
    reason: str
    """Short code: invalid_json, not_an_object, missing_key, wrong_type, empty_text, unknown_label,
    no_acceptable_labels."""
    message: str
    """The error the row would have raised under ``on_error=fail``."""
    raw: str
    """The line as read (truncated to 2,000 characters)."""


@dataclass(frozen=True)
class Split:
    name: str
    path: Path
    examples: tuple[Example, ...]
    sha256: str
    """Hash of the file bytes (provenance)."""
    skipped: tuple[SkippedRow, ...] = ()
    """Rows left out under ``data.on_error=skip`` (always empty under ``fail``)."""

    def skipped_counts(self) -> dict[str, int]:
        """Skipped rows per reason."""
        out: dict[str, int] = {}
        for row in self.skipped:
            out[row.reason] = out.get(row.reason, 0) + 1
        return out


def _acceptable_index(cfg: DataConfig) -> dict[tuple[str, int], tuple[str, ...]]:
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


def _split_labels(value, sep: str) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(s.strip() for s in str(value).split(sep) if s.strip())


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")  # spreadsheet exports start with a BOM
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte {raw[exc.start]:#04x}); save the file "
                        f"as UTF-8") from None


def _example(cfg: DataConfig, labels: set, split: str, i: int, line: str, where: str,
             index: Optional[dict]) -> Example:
    """One row → Example, or :class:`_BadRow` saying why not."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadRow("invalid_json", f"not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise _BadRow("not_an_object", f"expected a JSON object, got {_type_name(row)}")
    for col, ckey in ((cfg.text_column, "data.text_column"), (cfg.label_column, "data.label_column")):
        if col not in row:
            raise _BadRow("missing_key", f"missing key {col!r} ({ckey}); the row has {sorted(row)}")
    text, label = row[cfg.text_column], row[cfg.label_column]
    for col, value in ((cfg.text_column, text), (cfg.label_column, label)):
        if not isinstance(value, str):
            raise _BadRow("wrong_type", f"{col!r} must be a string, got {_type_name(value)}")
    if not text.strip():
        raise _BadRow("empty_text", f"empty {cfg.text_column!r} (an empty input cannot be classified)")
    if label not in labels:
        raise _BadRow("unknown_label", f"label {label!r} is not in data.labels "
                                       f"({len(labels)} labels configured)")
    acceptable: tuple[str, ...] = ()
    if cfg.acceptable.source == AcceptableSource.column:
        if cfg.acceptable.column not in row:
            raise _BadRow("missing_key", f"missing key {cfg.acceptable.column!r} (data.acceptable.column)")
        acceptable = _split_labels(row[cfg.acceptable.column], cfg.acceptable.separator)
    elif index is not None:
        if (split, i) not in index:
            raise _BadRow("no_acceptable_labels", f"no row for split={split!r} line={i} in "
                                                  f"data.acceptable.index_path")
        acceptable = index[(split, i)]
    if acceptable:
        acceptable = tuple(a for a in acceptable if a in labels)
        if label not in acceptable:
            acceptable = (label, *acceptable)
    return Example(id=f"{split}-{i}", text=text, label=label, acceptable=acceptable, source=where)


def load_split(cfg: DataConfig, split: str, key: str, path_value: str, limit: Optional[int],
               index: Optional[dict] = None) -> Split:
    """Read one JSONL split; ``key`` is the config key that named the file (for errors)."""
    path = resolve(path_value)
    if not path.is_file():
        raise DataError(f"{key}: file not found: {path} (relative paths are resolved against "
                        f"the project root)")
    raw = path.read_bytes()
    labels = set(cfg.labels)
    examples: list[Example] = []
    skipped: list[SkippedRow] = []
    for i, line in enumerate(_decode(raw, path).splitlines()):
        if limit is not None and len(examples) >= limit:
            break
        if not line.strip():
            continue
        where = f"{path}:{i + 1}"
        try:
            examples.append(_example(cfg, labels, split, i, line, where, index))
        except _BadRow as bad:
            if cfg.on_error != OnError.skip:
                raise DataError(f"{where}: {bad.message}") from None
            skipped.append(SkippedRow(i + 1, bad.reason, bad.message, line[:2000]))
    if not examples:
        raise DataError(f"{key}: {path} has no rows"
                        + (f" ({len(skipped)} skipped as bad, data.on_error=skip)" if skipped else ""))
    return Split(split, path, tuple(examples), hashlib.sha256(raw).hexdigest(), tuple(skipped))


def load_splits(cfg: DataConfig, eval_splits, need_train: bool) -> dict[str, Split]:
    """Load the training split (when needed) and every evaluation split."""
    if not cfg.labels:
        raise DataError("data.labels is empty: list the label set in the data config")
    index = _acceptable_index(cfg) if cfg.acceptable.source == AcceptableSource.index else None
    out: dict[str, Split] = {}
    if need_train:
        out["train"] = load_split(cfg, "train", "data.train_path", cfg.train_path,
                                  cfg.max_train_rows, index)
    for split in eval_splits:
        key = f"data.{split}_path"
        value = getattr(cfg, f"{split}_path")
        if value is None:
            raise DataError(f"{key} is not set but eval.splits names {split!r}")
        out[split] = load_split(cfg, split, key, value, cfg.max_eval_rows, index)
    return out


def skipped_summary(splits: dict[str, Split]) -> tuple[dict[str, float], list[dict]]:
    """Metrics (``data/<split>/skipped_rows``, ``data/<split>/skipped/<reason>``) and one record
    per skipped row (for ``data/skipped_rows.jsonl``); both empty when nothing was skipped."""
    metrics: dict[str, float] = {}
    rows: list[dict] = []
    for name, split in splits.items():
        if not split.skipped:
            continue
        metrics[f"data/{name}/skipped_rows"] = float(len(split.skipped))
        metrics.update({f"data/{name}/skipped/{r}": float(n) for r, n in split.skipped_counts().items()})
        rows += [{"split": name, "file": str(split.path), "line": r.line, "reason": r.reason,
                  "message": r.message, "raw": r.raw} for r in split.skipped]
    return metrics, rows


def label_set_sha256(labels) -> str:
    return hashlib.sha256("\n".join(labels).encode()).hexdigest()
