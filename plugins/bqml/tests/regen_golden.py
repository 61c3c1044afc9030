"""Rewrite the golden SQL files from ``ftlab_bqml.sql``, the only way they change.

    python plugins/bqml/tests/regen_golden.py      # then review `git diff plugins/bqml/tests/golden`

The tests never write them: a change to a statement fails ``test_golden_sql`` until someone runs
this, reads the diff and commits it with the code change.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    sys.path.insert(0, str(HERE))
    from test_bqml_sql import GOLDEN, _statements

    kinds = _statements()
    for kind, text in sorted(kinds.items()):
        path = GOLDEN / f"{kind}.sql"
        old = path.read_text() if path.is_file() else None
        path.write_text(text + "\n")
        print(f"{'unchanged' if old == text + chr(10) else 'written  '} {path.relative_to(HERE.parents[2])}")
    for stale in sorted(p for p in GOLDEN.glob("*.sql") if p.stem not in kinds):
        stale.unlink()
        print(f"removed   {stale.relative_to(HERE.parents[2])}")
    print("review: git diff --stat plugins/bqml/tests/golden")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
