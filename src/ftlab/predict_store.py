"""What a long ``ftlab predict`` has finished, kept on disk so a killed run loses nothing.

Next to the output file ``OUT`` sits ``OUT.partial/`` while a prediction runs: ``meta.json`` (what
is being predicted: run, model, input file hash, chunk size) and one ``chunk-NNNNNN.jsonl`` per
finished chunk, each written atomically (temporary file + rename), so a chunk file is either whole
or absent. Running the same command again reads the finished chunks and predicts only the rest;
any change to what is predicted (another run, model, input or chunk size) starts over. When the
output is written the folder is removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Optional

from ftlab.paths import atomic_write_text


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class PartialOutput:
    """The ``OUT.partial/`` folder of one prediction: chunks of ``chunk_rows`` rows, in order."""

    def __init__(self, output: Path, key: dict, total_rows: int, chunk_rows: int) -> None:
        self.folder = output.with_name(output.name + ".partial")
        self.meta = {"key": key, "total_rows": total_rows, "chunk_rows": chunk_rows}
        self.chunk_rows = chunk_rows
        self.total_rows = total_rows
        self.stale = False
        """True when a folder from another prediction (other run, model, input) was found."""

    @property
    def n_chunks(self) -> int:
        return -(-self.total_rows // self.chunk_rows)

    def _chunk(self, i: int) -> Path:
        return self.folder / f"chunk-{i:06d}.jsonl"

    def _rows_in(self, i: int) -> int:
        return min(self.chunk_rows, self.total_rows - i * self.chunk_rows)

    def load(self) -> dict[int, list[dict]]:
        """The finished chunks by index; a folder recorded for something else is discarded."""
        meta_path = self.folder / "meta.json"
        if not self.folder.exists():
            return {}
        try:
            found = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = None
        if found != self.meta:
            self.stale = found is not None
            shutil.rmtree(self.folder)
            return {}
        done: dict[int, list[dict]] = {}
        for i in range(self.n_chunks):
            records = self._read(i)
            if records is not None:
                done[i] = records
        return done

    def _read(self, i: int) -> Optional[list[dict]]:
        path = self._chunk(i)
        if not path.is_file():
            return None
        try:
            records = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        except ValueError:
            return None
        return records if len(records) == self._rows_in(i) else None

    def save(self, i: int, records: list[dict]) -> None:
        """Keep chunk ``i`` (atomically; ``meta.json`` first, so every chunk has its context)."""
        if not (self.folder / "meta.json").is_file():
            atomic_write_text(self.folder / "meta.json", json.dumps(self.meta, indent=1))
        atomic_write_text(self._chunk(i), "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                  for r in records))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
