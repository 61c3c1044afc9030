"""Load split files and tables into :class:`ftlab.contract.Example` rows, checking every row.

Sources: JSONL, CSV, TSV and Parquet files (``data.format``, auto from the extension;
:mod:`.formats`) and BigQuery tables (``data.*_table``; :mod:`.bigquery`). Every row gets the same
checks (:mod:`.rows`); errors name the config key, the file and the 1-based line (``file:line``) or
row (``file:row N``), and are raised before any model loads. With ``data.on_error=skip`` a bad row
is skipped instead and recorded on the split (:attr:`Split.skipped`); the runner logs the counts per
reason and the skipped rows, and warns. ``data.labels=auto`` and ``data.eval_fraction``:
:mod:`.load`, :mod:`.holdout`.
"""

from ftlab.data.load import LoadedData, Split, label_set_sha256, load_data, load_split, load_splits, skipped_summary
from ftlab.data.rows import DataError, SkippedRow

__all__ = ["DataError", "LoadedData", "SkippedRow", "Split", "label_set_sha256", "load_data", "load_split",
           "load_splits", "skipped_summary"]
