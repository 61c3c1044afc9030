"""``ftlab report RUN_ID|EXPERIMENT|RUN_DIR [--output DIR] [--max-runs N]``: HTML + Markdown report.

A run id or run folder gives one run; an experiment name gives its runs side by side, newest first. Metrics come
from MLflow (``MLFLOW_TRACKING_URI``, else the project's ``mlflow.db``); charts and provenance from
the run folder, or from the run's artifacts when the folder is not on this machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


def main(args: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="ftlab report", description=__doc__.splitlines()[0])
    p.add_argument("ref", metavar="RUN_ID|EXPERIMENT|RUN_DIR",
                   help="MLflow run id, experiment name or run folder")
    p.add_argument("--output", "-o", type=Path, default=None,
                   help="output folder (default: reports/ under the project root)")
    p.add_argument("--max-runs", type=int, default=20, help="experiment: newest N runs (default 20)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: as `ftlab` runs)")
    ns = p.parse_args(list(args))
    from ftlab.paths import ProjectNotFound, project_root
    from ftlab.report import build_report
    from ftlab.runs import RunNotFound

    try:
        out = ns.output if ns.output is not None else project_root() / "reports"
        html, md = build_report(ns.ref, out, ns.tracking_uri, ns.max_runs)
    except (RunNotFound, ProjectNotFound) as exc:
        print(f"ftlab report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {html}")
    print(f"markdown: {md}")
    return 0
