"""The run folder's tracking journal: every MLflow call a run makes, appended before it is tried.

``<run_dir>/tracking_journal.jsonl`` has one JSON object per line, in order:

- ``{"op": "params", "params": {key: value}}`` (values already redacted)
- ``{"op": "metrics", "ts": ms, "step": n, "metrics": {key: value}}`` (``ts`` is the timestamp sent
  to MLflow, so a later upload can tell which points the server already has)
- ``{"op": "tags", "tags": {key: value}}``
- ``{"op": "artifact", "path": "eval/base/eval/predictions.jsonl", "artifact_path": "eval/base/eval"}``
  (``path`` relative to the run folder; a folder stands for every file under it)
- ``{"op": "end", "status": "FINISHED", "ts": ms}``

With the files the run wrote beside it, it is enough for ``ftlab sync`` to rebuild the MLflow run
after a tracking outage. Append-only: a crash can only cut the last line short, which readers skip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

JOURNAL = "tracking_journal.jsonl"


def append(run_dir: Path, op: str, **fields: Any) -> None:
    with (run_dir / JOURNAL).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"op": op, **fields}, ensure_ascii=False) + "\n")


def read(run_dir: Path) -> Iterator[dict]:
    path = run_dir / JOURNAL
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # the last line of a crashed process
            continue
        if isinstance(entry, dict) and "op" in entry:
            yield entry
