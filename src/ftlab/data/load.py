"""Load the configured splits: read each file or table, check every row, derive what ``auto`` asks for.

``data.labels=auto`` reads the training file first (any label accepted), takes its sorted distinct
labels as the set, prints them with their counts, then checks every other split against them.
``data.eval_fraction`` splits the training file into ``train`` and ``eval`` (:mod:`ftlab.data.holdout`).
What the data decided is in :class:`LoadedData`: the manifest sections, the run-folder files, and the
run's ``config.yaml`` with the label list written out (so ``ftlab predict`` and ``ftlab replay`` read
the same set).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ftlab.config.data import AcceptableSource, DataConfig, OnError
from ftlab.data.formats import file_format, raw_text, read_file
from ftlab.data.rows import BadRow, DataError, RawRow, RowChecker, SkippedRow, acceptable_index, required_columns
from ftlab.paths import atomic_write_text, resolve

log = logging.getLogger("ftlab")


@dataclass(frozen=True)
class Split:
    name: str
    path: Union[Path, str]
    """The file (a Path), or ``project.dataset.table``."""
    examples: tuple
    """The checked rows (:class:`ftlab.contract.Example`)."""
    sha256: str
    """Hash of the file bytes, or of the rows read from a table (provenance)."""
    skipped: tuple[SkippedRow, ...] = ()
    """Rows left out under ``data.on_error=skip`` (always empty under ``fail``)."""
    format: str = "jsonl"
    """jsonl, csv, tsv, parquet or bigquery."""

    def skipped_counts(self) -> dict[str, int]:
        """Skipped rows per reason."""
        return dict(Counter(row.reason for row in self.skipped))


def source_of(cfg: DataConfig, split: str) -> Optional[tuple[str, str, bool]]:
    """``(config key, value, is_table)`` of the split's source, or None when neither key is set."""
    table, path = getattr(cfg, f"{split}_table", None), getattr(cfg, f"{split}_path", None)
    if table:
        return f"data.{split}_table", table, True
    if path:
        return f"data.{split}_path", path, False
    return None


def _read(cfg: DataConfig, key: str, value: str, is_table: bool, target: str = "label"):
    columns = required_columns(cfg, target)
    if is_table:
        from ftlab.data.bigquery import read_table

        sha, rows = read_table(value, cfg.bigquery, columns, key)
        return value, "bigquery", sha, rows
    path = resolve(value)
    if not path.is_file():
        raise DataError(f"{key}: file not found: {path} (relative paths are resolved against "
                        f"the project root)")
    fmt = file_format(path, cfg.format, key)
    sha, rows = read_file(path, fmt, columns, key)
    return path, fmt, sha, rows


def load_split(cfg: DataConfig, split: str, limit: Optional[int], labels: Optional[set],
               index: Optional[dict] = None, target: str = "label") -> Split:
    """Read one split (its file or table) and check every row; ``labels=None`` accepts any label;
    ``target`` is ``label``, ``text`` or ``answers`` (:class:`~ftlab.data.rows.RowChecker`)."""
    src = source_of(cfg, split)
    if src is None:
        raise DataError(f"data.{split}_path (or data.{split}_table) is not set")
    key, value, is_table = src
    where, fmt, sha, rows = _read(cfg, key, value, is_table, target)
    checker = RowChecker(cfg, labels, index, target)
    examples, skipped, seen = [], [], {}
    for row in rows:
        if limit is not None and len(examples) >= limit:
            break
        try:
            ex = checker.example(split, row)
            if cfg.id_column and ex.id in seen:
                raise BadRow("duplicate_id", f"id {ex.id!r} (data.id_column) is used already, at {seen[ex.id]}")
            seen[ex.id] = row.where
            examples.append(ex)
        except BadRow as bad:
            if cfg.on_error != OnError.skip:
                raise DataError(f"{row.where}: {bad.message}") from None
            skipped.append(_skipped(row, bad))
    if not examples:
        raise DataError(f"{key}: {where} has no rows"
                        + (f" ({len(skipped)} skipped as bad, data.on_error=skip)" if skipped else ""))
    return Split(split, where, tuple(examples), sha, tuple(skipped), fmt)


def _skipped(row: RawRow, bad: BadRow) -> SkippedRow:
    return SkippedRow(row.number, bad.reason, bad.message, raw_text(row), row.where)


@dataclass(frozen=True)
class LoadedData:
    """The splits and what the data decided (the label set, the held-out part)."""

    splits: dict[str, Split]
    labels: tuple[str, ...]
    """The label set, in display order: the configured list, or the training file's (``auto``)."""
    labels_auto: bool = False
    label_counts: Optional[dict[str, int]] = None
    """``auto``: training rows per label, over the whole training file."""
    holdout: Optional[dict] = None
    """``eval_fraction``: the split's record (fraction, seed, counts, the ids of each part)."""

    def manifest(self) -> dict:
        """Sections for ``manifest.json``: ``data_labels`` (auto) and ``data_split`` (eval_fraction)."""
        out: dict = {}
        if self.labels_auto:
            out["data_labels"] = {"source": "auto", "labels": list(self.labels), "counts": self.label_counts}
        if self.holdout is not None:
            out["data_split"] = {k: v for k, v in self.holdout.items() if not k.endswith("_ids")}
        return out

    def config_yaml(self, text: str) -> str:
        """The run's config text with ``data.labels: auto`` replaced by the label list it resolved to."""
        if not self.labels_auto:
            return text
        from omegaconf import OmegaConf

        node = OmegaConf.create(text)
        node.data.labels = list(self.labels)
        return OmegaConf.to_yaml(node)

    def write_files(self, run_dir: Path, log_artifact=None) -> list[Path]:
        """Run-folder files: ``data/split.json`` (eval_fraction: the ids of each part); each is handed
        to ``log_artifact(path, "data")`` when given."""
        if self.holdout is None:
            return []
        path = Path(run_dir) / "data" / "split.json"
        atomic_write_text(path, json.dumps(self.holdout, indent=1, ensure_ascii=False))
        if log_artifact is not None:
            log_artifact(path, "data")
        return [path]


def _print_labels(key: str, split: Split, labels: tuple[str, ...], counts: Counter) -> None:
    width = max(len(str(n)) for n in counts.values())
    lines = [f"data.labels=auto: {len(labels)} labels from {key} ({split.path}, {len(split.examples)} rows):"]
    lines += [f"  {counts[lab]:>{width}}  {lab}" for lab in labels]
    log.info("\n".join(lines))


def _only_known_acceptable(split: Split, labels: set) -> Split:
    """Acceptable labels outside the derived set are dropped (as for a configured set)."""
    examples = tuple(dataclasses.replace(ex, acceptable=tuple(a for a in ex.acceptable if a in labels))
                     if ex.acceptable else ex for ex in split.examples)
    return dataclasses.replace(split, examples=examples)


def _first(split: Split, n: Optional[int]) -> Split:
    return split if n is None else dataclasses.replace(split, examples=split.examples[:n])


def load_data(cfg: DataConfig, eval_splits, need_train: bool, target: str = "label") -> LoadedData:
    """Load the training split (when needed, or when ``auto``/``eval_fraction`` read it) and every
    evaluation split; errors name the key, the file and the line or row. ``target`` other than
    ``label``: a generation task's rows (a reference text, or ``answers``), no label set."""
    from ftlab.data.holdout import hold_out

    if target != "label":
        return _load_generation(cfg, eval_splits, need_train, target)
    if not cfg.labels_auto and not cfg.labels:
        raise DataError("data.labels is empty: list the label set in the data config, or set "
                        "data.labels=auto to take the training file's labels")
    index = acceptable_index(cfg) if cfg.acceptable.source == AcceptableSource.index else None
    auto, fraction = cfg.labels_auto, cfg.eval_fraction
    labels = None if auto else set(cfg.labels)
    train: Optional[Split] = None
    counts: Counter = Counter()
    if need_train or auto or fraction:
        if source_of(cfg, "train") is None:
            why = ("data.labels=auto reads the label set from it" if auto else
                   "data.eval_fraction splits it" if fraction else "stages include train")
            raise DataError(f"data.train_path (or data.train_table) is not set, and {why}")
        train = load_split(cfg, "train", None if (auto or fraction) else cfg.max_train_rows, labels, index)
        counts = Counter(ex.label for ex in train.examples)
    order = tuple(sorted(counts, key=lambda s: (s.casefold(), s))) if auto else tuple(cfg.labels)
    if auto:
        train = _only_known_acceptable(train, set(order))
        _print_labels(source_of(cfg, "train")[0], train, order, counts)
    holdout, held = None, None
    if fraction:
        train, held, holdout = hold_out(train, order, fraction, cfg.split_seed, source_of(cfg, "train"))
        held = _first(held, cfg.max_eval_rows)
    if train is not None and (auto or fraction):
        train = _first(train, cfg.max_train_rows)
    if holdout is not None:
        _record_holdout(holdout, train, held)
    out: dict[str, Split] = {"train": train} if need_train else {}
    out.update(_eval_splits(cfg, eval_splits, held, set(order), index, "label"))
    return LoadedData(out, order, auto, dict(counts) if auto else None, holdout)


def _record_holdout(holdout: dict, train: Split, held: Split) -> None:
    """The ids and row counts of both parts of an ``eval_fraction`` split, as used (after the caps)."""
    holdout["train_ids"] = [ex.id for ex in train.examples]
    holdout["eval_ids"] = [ex.id for ex in held.examples]
    holdout["rows_used"] = {"train": len(train.examples), "eval": len(held.examples)}


def _eval_splits(cfg: DataConfig, eval_splits, held: Optional[Split], labels: Optional[set],
                 index: Optional[dict], target: str) -> dict[str, Split]:
    """Every evaluation split: ``eval`` is the held-out part when ``eval_fraction`` made one."""
    out: dict[str, Split] = {}
    for split in eval_splits:
        if split == "eval" and held is not None:
            out[split] = held
            continue
        if source_of(cfg, split) is None:
            raise DataError(f"data.{split}_path is not set but eval.splits names {split!r}"
                            + (" (or set data.eval_fraction to hold out part of the training file)"
                               if split == "eval" else ""))
        out[split] = load_split(cfg, split, cfg.max_eval_rows, labels, index, target)
    return out


def _load_generation(cfg: DataConfig, eval_splits, need_train: bool, target: str) -> LoadedData:
    """A generation task's splits: no label set; ``eval_fraction`` holds out a seeded random part."""
    from ftlab.data.holdout import hold_out

    if cfg.labels_auto or cfg.labels:
        raise DataError("data.labels is set, but a generation task has no closed label set: remove it "
                        "(data.target_column names the reference)")
    out: dict[str, Split] = {}
    held, holdout = None, None
    if need_train or cfg.eval_fraction:
        if source_of(cfg, "train") is None:
            raise DataError("data.train_path (or data.train_table) is not set, and "
                            + ("data.eval_fraction splits it" if cfg.eval_fraction else "stages include train"))
        train = load_split(cfg, "train", None if cfg.eval_fraction else cfg.max_train_rows, None, target=target)
        if cfg.eval_fraction:  # one pseudo-label: a seeded random (unstratified) split
            train, held, holdout = hold_out(train, ("",), cfg.eval_fraction, cfg.split_seed, source_of(cfg, "train"))
            holdout["stratified_by"] = "none (a generation task has no labels)"
            train, held = _first(train, cfg.max_train_rows), _first(held, cfg.max_eval_rows)
            _record_holdout(holdout, train, held)
        if need_train:
            out["train"] = train
    out.update(_eval_splits(cfg, eval_splits, held, None, None, target))
    return LoadedData(out, (), False, None, holdout)


def load_splits(cfg: DataConfig, eval_splits, need_train: bool) -> dict[str, Split]:
    """The splits of :func:`load_data` (for callers that need only them)."""
    return load_data(cfg, eval_splits, need_train).splits


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
        rows += [{"split": name, "file": str(split.path), "line": r.line, "where": r.where,
                  "reason": r.reason, "message": r.message, "raw": r.raw} for r in split.skipped]
    return metrics, rows


def label_set_sha256(labels) -> str:
    return hashlib.sha256("\n".join(labels).encode()).hexdigest()
