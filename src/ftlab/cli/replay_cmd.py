"""``ftlab replay RUN [key=value ...] [--allow-drift]``: run a recorded run again and compare.

RUN is an MLflow run id or a run folder. Exit 0: every metric identical and the same weights
loaded (``model.weights_sha256``); 1: some differ;
2: not replayable (changed inputs without --allow-drift, secrets not supplied, no such run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


def main(args: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="ftlab replay", description=__doc__.splitlines()[0])
    p.add_argument("run", help="MLflow run id or run folder")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. secrets the record masks")
    p.add_argument("--allow-drift", action="store_true",
                   help="replay even if data, prompt or model files changed since the run")
    p.add_argument("--tracking-uri", default=None, help="store holding the run")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="folder for the replay (default outputs/<experiment>/replay-<time>)")
    ns = p.parse_args(list(args))
    import logging

    from ftlab.config.compose import ConfigError
    from ftlab.data import DataError
    from ftlab.replay import ReplayError, replay, table
    from ftlab.runner import StageError
    from ftlab.runs import RunNotFound
    from ftlab.tracking.mlflow_tracker import TrackingError

    logging.basicConfig(level=logging.INFO, format="[ftlab] %(message)s")
    try:
        result = replay(ns.run, ns.overrides, ns.allow_drift, ns.tracking_uri, ns.run_dir)
    except (ReplayError, RunNotFound, ConfigError, DataError, StageError, TrackingError) as exc:
        print(f"ftlab replay: {exc}", file=sys.stderr)
        return 2
    print(f"replay of {result.original_id}: run folder {result.run_dir}"
          + (f", MLflow run {result.run_id}" if result.run_id else ""))
    for line in table(result):
        print(line)
    return 1 if result.differences or result.identity else 0
