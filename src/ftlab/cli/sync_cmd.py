"""``ftlab sync RUN_DIR [--tracking-uri URI]``: upload what a run kept while MLflow was down.

Idempotent: it asks the server what the run has and sends only the rest (see ftlab.tracking.sync).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


def main(args: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="ftlab sync", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="the run folder (printed by the run as 'run folder:')")
    p.add_argument("--tracking-uri", default=None,
                   help="server to upload to (default: the one the run recorded)")
    ns = p.parse_args(list(args))
    from ftlab.tracking.sync import SyncError, sync

    try:
        report = sync(ns.run_dir, ns.tracking_uri)
    except SyncError as exc:
        print(f"ftlab sync: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    return 0
