"""Which process of a launched multi-process run this is, and what a follower rank does.

``ftlab launch`` starts N processes of one run (torchrun, or Ray Train workers), each told its place
through torchrun's variables ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (the Ray launcher sets the
same). Rank 0 runs the run exactly as a single process does: stages, evaluator, MLflow, run folder.
Every other rank *follows* (:func:`follow`): it builds the same backend with a context that logs
nothing and writes only into a temporary folder, and calls the backend's ``follow()``, which does
that rank's share of each training and prediction call rank 0 makes, until rank 0's run ends. So
the host's run order, tracking and evaluation are the same code with one process or many.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger("ftlab")
PARENT_ENV = "FTLAB_LAUNCH_PARENT"
"""JSON ``{"run_id", "tracking_uri_id"}`` of a launcher's parent MLflow run (Ray Train): rank 0's run
nests under it when it logs to the same store."""


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def follower() -> bool:
    """This process is rank > 0 of a launched run: it must neither track nor write the run folder."""
    return world_size() > 1 and rank() > 0


def follow(cfg: Any, plugins: Any = None) -> None:
    """A follower rank's whole run: the backend's ``follow()`` in a temporary folder, logging nothing."""
    from ftlab.contract import RunContext
    from ftlab.plugins import PluginError, get_plugins

    plugins = plugins or get_plugins()
    info = plugins.backend(cfg.backend.name)
    with tempfile.TemporaryDirectory(prefix=f"ftlab-rank{rank()}-") as scratch:
        backend = info.factory(cfg, RunContext(Path(scratch)))
        serve = getattr(backend, "follow", None)
        if serve is None:
            raise PluginError(f"backend {info.name!r} cannot run over several processes: it has no "
                              f"follow() method (run it as one process, without ftlab launch)")
        log.info("rank %d of %d: following rank 0", rank(), world_size())
        serve()


def parent_tags(tracking_uri: str) -> dict[str, str]:
    """Tags nesting this run under its launcher's parent run (:data:`PARENT_ENV`); {} when none."""
    raw = os.environ.get(PARENT_ENV)
    if not raw:
        return {}
    from ftlab.sweeps.context import uri_id

    info = json.loads(raw)
    tags = {"ftlab.launch.world_size": str(world_size())}
    if info.get("tracking_uri_id") == uri_id(tracking_uri):
        tags["mlflow.parentRunId"] = str(info["run_id"])
    else:
        log.warning("this run logs to another MLflow store than its launcher's parent run; it is not nested")
    return tags


def compose_typed(args: list[str], plugins: Optional[Any] = None) -> Any:
    """The validated run config of ``ftlab`` arguments, composed without a Hydra app (no run folder)."""
    from ftlab.cli.run_cmd import _overrides, config_dir
    from ftlab.config.compose import compose, validate

    return validate(compose(_overrides(args), plugins, config_dir=config_dir(args)))
