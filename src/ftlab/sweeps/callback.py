"""Hydra callback (``hydra.callbacks.ftlab_sweep`` in conf/config.yaml): the sweep's parent run.

``on_multirun_start`` and ``on_multirun_end`` run in the driver; ``on_job_start`` runs in whichever
process runs the job (joblib/Ray/submitit workers), so it only reads the config and the environment.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("ftlab")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.parent: Any = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from ftlab.sweeps import search
        from ftlab.sweeps.parent import SweepParent

        self.parent = SweepParent(config)
        study = search.study_of(config)
        run_id = self.parent.start(reuse_run_id=search.recorded_parent(study) if study else None)
        if study is not None and run_id:
            search.record_parent(study, run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent is not None:
            self.parent.finish()
            self.parent = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Split the machine's CPU threads between jobs that run at the same time."""
        threads = int(os.environ.get("FTLAB_JOB_THREADS") or 0) or threads_per_job(config)
        if not threads:
            return
        os.environ["FTLAB_THREADS"] = str(threads)  # recorded on the run as tag ftlab.threads
        for var in THREAD_VARS:
            os.environ[var] = str(threads)
        import sys

        if "torch" in sys.modules:  # a reused worker: torch read the variables already
            sys.modules["torch"].set_num_threads(threads)


def threads_per_job(config: DictConfig) -> int:
    """cores // concurrent jobs for a local launcher with ``n_jobs`` (joblib); 0 = leave them alone.

    ``$FTLAB_JOB_THREADS``, set per worker by ``ftlab_devices``, wins."""
    n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs", default=None)
    if not n_jobs or str(OmegaConf.select(config, "hydra.mode", default="")) != "RunMode.MULTIRUN":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = cores if int(n_jobs) < 0 else min(int(n_jobs), cores)
    return max(1, cores // max(1, n))
