"""Load split files into :class:`ftlab.contract.Example` rows, checking every row.

Errors name the config key, the file and the 1-based line, and are raised before any model loads.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ftlab.config import AcceptableSource, DataConfig
from ftlab.contract import Example
from ftlab.paths import resolve


class DataError(ValueError):
    """A data file is missing or a row is invalid."""


@dataclass(frozen=True)
class Split:
    name: str
    path: Path
    examples: tuple[Example, ...]
    sha256: str
    """Hash of the file bytes (provenance)."""


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
    for i, line in enumerate(raw.decode("utf-8").splitlines()):
        if limit is not None and len(examples) >= limit:
            break
        where = f"{path}:{i + 1}"
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object")
        for col, ckey in ((cfg.text_column, "data.text_column"), (cfg.label_column, "data.label_column")):
            if col not in row:
                raise DataError(f"{where}: missing key {col!r} ({ckey}); the row has {sorted(row)}")
        text, label = row[cfg.text_column], row[cfg.label_column]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: empty {cfg.text_column!r} (an empty input cannot be classified)")
        if label not in labels:
            raise DataError(f"{where}: label {label!r} is not in data.labels "
                            f"({len(labels)} labels configured)")
        acceptable: tuple[str, ...] = ()
        if cfg.acceptable.source == AcceptableSource.column:
            if cfg.acceptable.column not in row:
                raise DataError(f"{where}: missing key {cfg.acceptable.column!r} (data.acceptable.column)")
            acceptable = _split_labels(row[cfg.acceptable.column], cfg.acceptable.separator)
        elif index is not None:
            if (split, i) not in index:
                raise DataError(f"{where}: no row for split={split!r} line={i} in "
                                f"data.acceptable.index_path")
            acceptable = index[(split, i)]
        if acceptable:
            acceptable = tuple(a for a in acceptable if a in labels)
            if label not in acceptable:
                acceptable = (label, *acceptable)
        examples.append(Example(id=f"{split}-{i}", text=text, label=label, acceptable=acceptable,
                                source=where))
    if not examples:
        raise DataError(f"{key}: {path} has no rows")
    return Split(split, path, tuple(examples), hashlib.sha256(raw).hexdigest())


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


def label_set_sha256(labels) -> str:
    return hashlib.sha256("\n".join(labels).encode()).hexdigest()
