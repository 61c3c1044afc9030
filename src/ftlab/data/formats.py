"""Split files as rows: JSONL, CSV, TSV and Parquet, each read into :class:`RawRow` values.

The format is ``data.format``, or with ``auto`` the file's extension. Text formats may start with a
UTF-8 BOM and use CRLF line endings; a file that is not UTF-8 fails naming the line. CSV and TSV
have a header row; a quoted cell may span lines (the row is named by the line it starts on).
A header or Parquet schema without a required column fails once for the file, naming the column,
its config key and the columns there are. pyarrow is imported only to read a Parquet file.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Iterator

from ftlab.config.data import DataFormat
from ftlab.data.rows import BadRow, DataError, RawRow, missing_columns_error, type_name

EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
              ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}
"""``data.format=auto``: extension → format (case-insensitive; a trailing ``.txt`` is not guessed)."""
RAW_CHARS = 2000


def file_format(path: Path, fmt: DataFormat, key: str) -> str:
    """The format to read ``path`` with: ``fmt`` unless it is ``auto``."""
    if fmt != DataFormat.auto:
        return fmt.value
    found = EXTENSIONS.get(path.suffix.lower())
    if found is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise DataError(f"{key}: cannot tell the format of {path} from its extension "
                        f"{path.suffix or '(none)'!r} (known: {known}); set data.format to one of "
                        f"{', '.join(f.value for f in DataFormat if f != DataFormat.auto)}")
    return found


def decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")  # spreadsheet exports start with a BOM
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte {raw[exc.start]:#04x}); save the file "
                        f"as UTF-8") from None


def read_file(path: Path, fmt: str, columns: dict[str, str], key: str) -> tuple[str, Iterator[RawRow]]:
    """``(sha256 of the file's bytes, its rows)``; ``columns``: required column → config key."""
    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    if fmt == "jsonl":
        return sha, _jsonl(decode(raw, path), path)
    if fmt in ("csv", "tsv"):
        return sha, _delimited(decode(raw, path), path, "," if fmt == "csv" else "\t", columns, key)
    if fmt == "parquet":
        return sha, _parquet(path, columns, key)
    raise DataError(f"data.format: unknown format {fmt!r}")


def column_names(path: Path, fmt: str) -> list[str]:
    """The file's columns: the header (CSV, TSV), the schema (Parquet), the first object's keys (JSONL)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    for row in read_file(path, fmt, {}, "--data")[1]:
        if not isinstance(row.value, BadRow):
            return list(row.value)
    return []


def _jsonl(text: str, path: Path) -> Iterator[RawRow]:
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            if not isinstance(value, dict):
                value = BadRow("not_an_object", f"expected a JSON object, got {type_name(value)}")
        except json.JSONDecodeError as exc:
            value = BadRow("invalid_json", f"not valid JSON ({exc.msg})")
        yield RawRow(i, i + 1, f"{path}:{i + 1}", line[:RAW_CHARS], value)


def _delimited(text: str, path: Path, delimiter: str, columns: dict[str, str], key: str) -> Iterator[RawRow]:
    import io

    csv.field_size_limit(1 << 30)  # a transcript is far longer than the module's 128 KiB default
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)

    def records() -> Iterator[tuple[int, list[str]]]:
        start = 1
        while True:
            try:
                rec = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DataError(f"{path}:{start}: not valid {'CSV' if delimiter == ',' else 'TSV'} "
                                f"({exc})") from None
            if rec:  # a blank line is no row
                yield start, rec
            start = reader.line_num + 1

    rows = records()
    first = next(rows, None)
    if first is None:
        return
    header = [h.strip() for h in first[1]]
    err = missing_columns_error(key, str(path), columns, header)
    if err is not None:
        raise err
    for n, (line, rec) in enumerate(rows):
        if len(rec) == len(header):
            yield RawRow(n, line, f"{path}:{line}", "", dict(zip(header, rec)))
        else:
            bad = BadRow("wrong_field_count", f"{len(rec)} fields, the header has {len(header)}")
            yield RawRow(n, line, f"{path}:{line}", json.dumps(rec, ensure_ascii=False)[:RAW_CHARS], bad)


def _parquet(path: Path, columns: dict[str, str], key: str) -> Iterator[RawRow]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with the host's pandas/mlflow
        raise DataError(f"{key}: reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid for a file that is not Parquet
        raise DataError(f"{key}: {path} is not a Parquet file ({exc})") from None
    err = missing_columns_error(key, str(path), columns, list(pf.schema_arrow.names))
    if err is not None:
        raise err
    names = list(columns)
    table = pf.read(columns=names)
    cols = [table.column(c).to_pylist() for c in names]
    for i, cells in enumerate(zip(*cols)):
        yield RawRow(i, i + 1, f"{path}:row {i + 1}", "", dict(zip(names, cells)))


def raw_text(row: RawRow) -> str:
    """What the skipped-rows log shows of a row: as read (JSONL), else its cells as JSON."""
    if row.raw or isinstance(row.value, BadRow):
        return row.raw
    return json.dumps(row.value, ensure_ascii=False, default=str)[:RAW_CHARS]
