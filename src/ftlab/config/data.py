"""Schema of the ``data`` group: split files, columns, label set, acceptable labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional

from ftlab.config.bounds import at_least


class OnError(Enum):
    fail = "fail"  # stop at the first bad row, naming file:line (the default)
    skip = "skip"  # leave bad rows out; counts per reason and the lines are logged with the run


class AcceptableSource(Enum):
    none = "none"  # strict scoring only
    column = "column"  # a column of the JSONL row lists the acceptable labels
    index = "index"  # an index file (CSV) joined on split + line lists them


@dataclass
class AcceptableLabelsConfig:
    """Where each example's set of acceptable labels comes from (lenient scoring)."""

    source: AcceptableSource = AcceptableSource.none
    """none, column or index."""
    column: str = "acceptable_labels"
    """column: the row key holding a list, or a string split on `separator`."""
    index_path: Optional[str] = None
    """index: CSV file with one row per (split, line)."""
    index_split_column: str = "split"
    """index: column naming the split (train, eval, test)."""
    index_line_column: str = "line"
    """index: column holding the 0-based line number in the split file."""
    index_labels_column: str = "labels_for_same_text"
    """index: column holding the acceptable labels."""
    separator: str = ";"
    """Separator between labels in a string cell."""


@dataclass
class DataConfig:
    """The task's data: JSONL split files with a text and a label key per line."""

    name: str = "mtsamples17"
    """Short name of the data set."""
    train_path: str = "data/mtsamples17/train.jsonl"
    """Training split (relative paths are resolved against the project root)."""
    eval_path: str = "data/mtsamples17/eval.jsonl"
    """Evaluation split."""
    test_path: Optional[str] = None
    """Optional test split, used when eval.splits names `test`."""
    text_column: str = "input_text"
    """Key of the input text in each JSON line."""
    label_column: str = "output_text"
    """Key of the label in each JSON line."""
    target_column: Optional[str] = None
    """Generation tasks (eval.task other than classification): key of the reference text, or for question_answering of a list of acceptable answers (a JSON list, or a string split on data.acceptable.separator); null = data.label_column."""
    labels: List[str] = field(default_factory=list)
    """The closed label set, in display order; a row's label outside it is an error."""
    max_train_rows: Optional[int] = at_least(1, None)
    """Use only the first N training rows (files are pre-shuffled); null = all."""
    max_eval_rows: Optional[int] = at_least(1, None)
    """Use only the first N rows of each evaluation split; null = all."""
    acceptable: AcceptableLabelsConfig = field(default_factory=AcceptableLabelsConfig)
    """Lenient scoring: where the acceptable labels of each row come from."""
    on_error: OnError = OnError.fail
    """A bad row: fail (stop, naming file:line) or skip (leave it out; counted and logged)."""

    def __post_init__(self) -> None:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("data.labels has duplicates")
        if self.acceptable.source == AcceptableSource.index and not self.acceptable.index_path:
            raise ValueError("data.acceptable.index_path must be set when data.acceptable.source=index")
