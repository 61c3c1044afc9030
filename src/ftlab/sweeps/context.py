"""What a job needs to know about its sweep, found without in-process state.

The sweep callback writes ``<hydra.sweep.dir>/ftlab_sweep.json`` (parent run id, store fingerprint) and
exports the same JSON as ``$FTLAB_SWEEP``. A job reads the file first (shared file systems: SLURM,
submitit, local processes), then the variable (Ray workers on other nodes inherit the environment).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

SWEEP_FILE = "ftlab_sweep.json"
SWEEP_ENV = "FTLAB_SWEEP"
SEED_KEYS = ("seed", "train.seed")


def _multirun_cfg() -> Any:
    """Hydra's config of this job when it runs in a multirun, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get() if HydraConfig.initialized() else None
    return hc if hc is not None and hc.mode == RunMode.MULTIRUN else None


def in_multirun() -> bool:
    """This process runs a job of a Hydra multirun (a sweep or a search)."""
    return _multirun_cfg() is not None


def uri_id(uri: str) -> str:
    """A tracking URI's fingerprint: jobs check they log to the parent's store without the URI
    (which may hold credentials) being written to the sweep folder."""
    import hashlib

    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def read_sweep(sweep_dir: Optional[str]) -> Optional[dict]:
    """The parent-run record of the sweep a job belongs to, or None (not in a sweep)."""
    if sweep_dir:
        path = Path(sweep_dir) / SWEEP_FILE
        if path.is_file():
            return json.loads(path.read_text())
    env = os.environ.get(SWEEP_ENV)
    if env:
        info = json.loads(env)
        if not sweep_dir or info.get("sweep_dir") == str(sweep_dir):
            return info
    return None


def job_tracking_uri(configured: Optional[str], resolved: str) -> str:
    """The store a multirun job logs to: ``resolved`` (its config's ``tracking.uri``, else its
    environment's) unless the config names none and its sweep's parent is on another store.

    A worker process can outlive the environment it started with (joblib's loky workers are reused
    across sweeps in one Python process), so its ``MLFLOW_TRACKING_URI`` may be an earlier sweep's.
    The driver records its store in ``ftlab_sweep.json`` when the URI holds no credentials; the job
    then follows it. A URI with credentials is never written there: the job keeps its own and warns."""
    hc = _multirun_cfg()
    if configured or hc is None:
        return resolved
    info = read_sweep(str(hc.sweep.dir))
    if not info or info.get("tracking_uri_id") in (None, uri_id(resolved)):
        return resolved
    if info.get("tracking_uri"):
        return str(info["tracking_uri"])
    import logging

    from ftlab.tracking.redact import redact_uri

    logging.getLogger("ftlab").warning(
        "this job's MLflow store %s is not its sweep's (the worker's MLFLOW_TRACKING_URI differs from "
        "the driver's); it will not be nested under the sweep's parent run: set tracking.uri",
        redact_uri(resolved))
    return resolved


def job_tags(tracking_uri: str) -> dict[str, str]:
    """MLflow tags that nest this job under its sweep's parent run (or a launcher's, :mod:`ftlab.ranks`)."""
    hc = _multirun_cfg()
    if hc is None:  # rank 0 of a launched run nests under its launcher's parent run, if it has one
        from ftlab.ranks import parent_tags

        return parent_tags(tracking_uri)
    info = read_sweep(str(hc.sweep.dir))
    tags = {"ftlab.sweep.dir": str(hc.sweep.dir), "ftlab.sweep.job_num": str(hc.job.num),
            "ftlab.sweep.overrides": json.dumps(list(hc.overrides.task))}
    for var in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"):
        if os.environ.get(var) is not None:
            tags[f"ftlab.env.{var}"] = os.environ[var]
    if os.environ.get("FTLAB_TRIAL"):  # a job of an Optuna search: which trial this attempt belongs to
        tags["ftlab.optuna.trial"] = os.environ["FTLAB_TRIAL"]
    if os.environ.get("FTLAB_THREADS"):  # set by the sweep callback for concurrent local jobs
        tags["ftlab.threads"] = os.environ["FTLAB_THREADS"]
    if info and info.get("tracking_uri_id") == uri_id(tracking_uri):
        tags["mlflow.parentRunId"] = info["run_id"]
    return tags


def objective_key(cfg: Any) -> str:
    """The metric a sweep ranks by: ``sweep.objective``, else the cross-validated macro-F1 mean when
    the runs cross-validate (``eval.cv.folds`` >= 2), else the last evaluated stage's macro-F1."""
    if cfg.sweep.objective:
        return str(cfg.sweep.objective)
    metric = task_headline(str(cfg.eval.task))
    stages = [getattr(s, "value", s) for s in cfg.stages]
    if int(cfg.eval.cv.folds) >= 2 or "cross_validate" in stages:
        return f"cv/{metric}_mean"
    stage = "tuned" if "evaluate_tuned" in stages else "base"
    return f"eval/{stage}/{cfg.eval.splits[0]}/{metric}"


def task_headline(task: str) -> str:
    """The first headline metric of ``eval.task`` (``macro_f1``; ``rougeL_f1`` for summarization …)."""
    if task == "classification":
        return "macro_f1"
    from ftlab.plugins import get_plugins

    return get_plugins().task(task).headline[0]


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["train.lora.r=4", "+x=1"]`` → ``{"train.lora.r": "4", "x": "1"}``."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.lstrip("+~")] = value
    return out
