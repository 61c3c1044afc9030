"""Schema of the ``data`` group: split files or tables, their format, columns, label set, acceptable labels."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from ftlab.config.bounds import at_least, within

LABELS_AUTO = "auto"
"""``data.labels: auto``: the sorted distinct labels of the training file."""
TABLE_ID = re.compile(r"^[a-z0-9][a-z0-9.:-]*\.[A-Za-z0-9_]+\.[A-Za-z0-9_$-]+$")
"""``project.dataset.table`` (a domain-scoped project such as ``example.com:proj`` included)."""


class OnError(Enum):
    fail = "fail"  # stop at the first bad row, naming file:line (the default)
    skip = "skip"  # leave bad rows out; counts per reason and the lines are logged with the run


class DataFormat(Enum):
    auto = "auto"  # from the file's extension: .jsonl/.ndjson/.json, .csv, .tsv/.tab, .parquet/.pq
    jsonl = "jsonl"  # one JSON object a line
    csv = "csv"  # comma-separated, a header row first (RFC 4180 quoting; a cell may span lines)
    tsv = "tsv"  # tab-separated, a header row first
    parquet = "parquet"  # an Apache Parquet file (read with pyarrow)


class AcceptableSource(Enum):
    none = "none"  # strict scoring only
    column = "column"  # a column of each row lists the acceptable labels
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
class BigQuerySourceConfig:
    """How `data.*_table` splits are read: google-cloud-bigquery's client (`pip install 'ftlab[bigquery-data]'`)."""

    project: Optional[str] = None
    """Project that runs (and is billed for) the reads; null = the table's own project."""
    location: Optional[str] = None
    """Dataset location (e.g. `US`, `EU`); null = the client's default."""
    api_endpoint: Optional[str] = None
    """REST endpoint; null = Google's. An `http://` URL (a local fake or emulator) is used with anonymous credentials; otherwise Application Default Credentials."""
    page_size: int = at_least(1, 10000)
    """Rows per page read from the table (`tabledata.list`)."""


@dataclass
class DataConfig:
    """The task's data: split files (JSONL, CSV, TSV, Parquet) or BigQuery tables, with a text and a label column."""

    name: str = "data"
    """Short name of the data set."""
    format: DataFormat = DataFormat.auto
    """Format of the split files: auto (from each file's extension), jsonl, csv, tsv or parquet. Every format gets the same row checks; errors name `file:line` (JSONL, CSV, TSV) or `file:row N` (Parquet, tables)."""
    train_path: Optional[str] = None
    """Training split file (relative paths are resolved against the project root); or set `train_table`."""
    eval_path: Optional[str] = None
    """Evaluation split file; or set `eval_table`, or leave both null and set `eval_fraction`."""
    test_path: Optional[str] = None
    """Optional test split, used when eval.splits names `test`."""
    train_table: Optional[str] = None
    """Training split as a BigQuery table `project.dataset.table` (instead of `train_path`)."""
    eval_table: Optional[str] = None
    """Evaluation split as a BigQuery table (instead of `eval_path`)."""
    test_table: Optional[str] = None
    """Test split as a BigQuery table (instead of `test_path`)."""
    bigquery: BigQuerySourceConfig = field(default_factory=BigQuerySourceConfig)
    """Client settings for the `*_table` splits."""
    text_column: str = "input_text"
    """Column (JSON key) of the input text."""
    label_column: str = "output_text"
    """Column (JSON key) of the label."""
    target_column: Optional[str] = None
    """Generation tasks (eval.task other than classification): key of the reference text, or for question_answering of a list of acceptable answers (a JSON list, or a string split on data.acceptable.separator); null = data.label_column."""
    id_column: Optional[str] = None
    """Column holding a unique row id (used as the example id); null = `<split>-<0-based line or row>`."""
    labels: Any = field(default_factory=list)
    """The closed label set, in display order (a list), or `auto`: the distinct labels of the training file, sorted case-insensitively, printed with their counts and recorded in the manifest (`data_labels`). A row's label outside the set is an error."""
    eval_fraction: Optional[float] = within(0, 1, None, lo_open=True, hi_open=True)
    """A single-split data set: hold out this fraction of the training file (0 < f < 1) as the `eval` split, stratified by label, with `split_seed`; the row ids of each part are written to `data/split.json` in the run folder. Needs `eval_path` and `eval_table` null."""
    split_seed: int = 0
    """Seed of the `eval_fraction` split (kept apart from `seed`, so runs over several seeds share one eval split)."""
    max_train_rows: Optional[int] = at_least(1, None)
    """Use only the first N training rows (files are pre-shuffled); null = all."""
    max_eval_rows: Optional[int] = at_least(1, None)
    """Use only the first N rows of each evaluation split; null = all."""
    acceptable: AcceptableLabelsConfig = field(default_factory=AcceptableLabelsConfig)
    """Lenient scoring: where the acceptable labels of each row come from."""
    on_error: OnError = OnError.fail
    """A bad row: fail (stop, naming file:line) or skip (leave it out; counted and logged)."""

    @property
    def labels_auto(self) -> bool:
        """True when the label set comes from the training file (`labels: auto`)."""
        return isinstance(self.labels, str) and self.labels == LABELS_AUTO

    def __post_init__(self) -> None:
        if isinstance(self.labels, str):
            if self.labels != LABELS_AUTO:
                raise ValueError(f"data.labels must be a list of labels or 'auto', got {self.labels!r}")
        elif isinstance(self.labels, (list, tuple)) or type(self.labels).__name__ == "ListConfig":
            self.labels = list(self.labels)
            bad = [x for x in self.labels if not isinstance(x, str)]
            if bad:
                raise ValueError(f"data.labels must be strings; got {bad[0]!r} ({type(bad[0]).__name__}); "
                                 f"quote numeric labels in YAML ('1', not 1)")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError("data.labels has duplicates")
        else:
            raise ValueError(f"data.labels must be a list of labels or 'auto', got {type(self.labels).__name__}")
        if self.acceptable.source == AcceptableSource.index and not self.acceptable.index_path:
            raise ValueError("data.acceptable.index_path must be set when data.acceptable.source=index")
        for split in ("train", "eval", "test"):
            path, table = getattr(self, f"{split}_path"), getattr(self, f"{split}_table")
            if path is not None and table is not None:
                raise ValueError(f"data.{split}_path and data.{split}_table are both set; choose one "
                                 f"(set the other to null)")
            if table is not None and not TABLE_ID.match(table):
                raise ValueError(f"data.{split}_table={table!r} is not a BigQuery table id "
                                 f"'project.dataset.table'")
        if self.eval_fraction is not None:
            if not 0 < self.eval_fraction < 1:
                raise ValueError(f"data.eval_fraction must be between 0 and 1 (exclusive), got "
                                 f"{self.eval_fraction}")
            if self.eval_path is not None or self.eval_table is not None:
                raise ValueError("data.eval_fraction splits the training file into train and eval; "
                                 "set data.eval_path (or data.eval_table) to null, or drop eval_fraction")
        if self.bigquery.page_size < 1:
            raise ValueError("data.bigquery.page_size must be >= 1")
        if self.bigquery.api_endpoint and not self.bigquery.api_endpoint.startswith(("http://", "https://")):
            raise ValueError(f"data.bigquery.api_endpoint={self.bigquery.api_endpoint!r} must be an http(s) URL")
