"""``ftlab launch`` on Ray Train: one run over ``backend.ray_train.num_workers`` Ray workers.

The driver (this process) opens a parent MLflow run (tags ``ftlab.launch=ray_train``, the scaling
settings as params), then runs a ``ray.train.torch.TorchTrainer`` whose workers are the run's ranks:
Ray makes their process group (gloo on CPU, nccl with ``use_gpu``); worker 0 runs ``ftlab ARGS`` with
its run folder at the driver's ``hydra.run.dir`` and logs the run as a child of the parent (its
artifacts go to MLflow from that worker, as a job of the Ray sweep launcher does); the other workers
follow it (:mod:`ftlab.ranks`). On an existing cluster (``backend.ray_train.address``) the workers
need ftlab and the backend installed, and an MLflow store they can reach (``tracking.uri`` of a
server, or a sqlite file on shared storage); docs/distributed.md.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger("ftlab")
FORWARD_ENV = ("PYTHONPATH", "MLFLOW_TRACKING_URI", "FTLAB_HOME", "FTLAB_CACHE_DIR", "HF_HUB_OFFLINE",
               "HF_HOME", "MLFLOW_DISABLE_TELEMETRY", "TOKENIZERS_PARALLELISM")
"""Driver environment the workers get (Ray's ``runtime_env``), so they import and log the same way."""


def run_dir_of(args: Sequence[str], cfg: Any) -> Path:
    """The run folder worker 0 writes: the ``hydra.run.dir=`` override, else ftlab's default."""
    from ftlab.paths import project_root

    for a in args:
        if a.startswith("hydra.run.dir="):
            return Path(a.split("=", 1)[1]).expanduser().resolve()
    now = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return project_root() / "outputs" / str(cfg.experiment) / now


def worker(config: dict) -> None:
    """One Ray Train worker: rank 0 runs ``ftlab ARGS``, the others follow it."""
    import ray.train

    ctx = ray.train.get_context()
    os.environ.update(config["env"])
    os.environ.update({"RANK": str(ctx.get_world_rank()), "WORLD_SIZE": str(ctx.get_world_size()),
                       "LOCAL_RANK": str(ctx.get_local_rank())})
    from ftlab import ranks

    if ranks.follower():
        ranks.follow(ranks.compose_typed(config["args"]))
        return
    from ftlab.cli.run_cmd import main as run_main

    rc = run_main(config["args"])
    if rc:
        raise RuntimeError(f"rank 0's run failed (exit status {rc}); its error is printed above")


def launch(args: Sequence[str]) -> int:
    """Run ``ftlab ARGS`` over Ray Train workers as ``backend.ray_train`` says; the exit status."""
    from ftlab.config.compose import ConfigError
    from ftlab.ranks import PARENT_ENV, compose_typed
    from ftlab.sweeps.context import uri_id
    from ftlab.tracking.mlflow_tracker import Tracker, resolve_tracking_uri
    from ftlab.tracking.redact import redact_uri

    cfg = compose_typed(list(args))
    rt = getattr(cfg.backend, "ray_train", None)
    if rt is None or rt.num_workers < 1:
        raise ConfigError(f"ftlab launch needs --nproc N (torchrun) or backend.ray_train.num_workers >= 1 "
                          f"(Ray Train); backend {cfg.backend.name!r} has "
                          + ("no ray_train settings" if rt is None else "backend.ray_train.num_workers=0"))
    run_dir = run_dir_of(args, cfg)
    launch_dir = run_dir.with_name(run_dir.name + ".launch")
    t = cfg.tracking
    uri = resolve_tracking_uri(t.uri) if t.enabled else ""
    parent = Tracker(launch_dir, bool(t.enabled), t.uri, t.experiment_name or cfg.experiment,
                     f"ray_train-{cfg.experiment}-{run_dir.name}")
    scaling = {"num_workers": rt.num_workers, "use_gpu": rt.use_gpu, "cpus_per_worker": rt.cpus_per_worker,
               "address": redact_uri(rt.address) if rt.address else "local"}
    parent.start({"ftlab.launch": "ray_train", "ftlab.run_dir": str(run_dir)})
    parent.log_params({f"launch.{k}": str(v) for k, v in scaling.items()})
    env = {k: os.environ[k] for k in FORWARD_ENV if k in os.environ}
    if parent.run_id:
        env[PARENT_ENV] = json.dumps({"run_id": parent.run_id, "tracking_uri_id": uri_id(uri)})
    child_args = [a for a in args if not a.startswith("hydra.run.dir=")] + [f"hydra.run.dir={run_dir}"]
    error = None
    try:
        error = _fit(rt, child_args, env, launch_dir).error
    except KeyboardInterrupt:
        parent.end("KILLED")
        raise
    except Exception as exc:  # Ray Train raises TrainingFailedError when a worker failed
        error = exc
    status = "FINISHED" if error is None else "FAILED"
    parent.end(status, error=None if error is None else f"{type(error).__name__}: {error}"[:5000])
    print(f"ray_train launch: {status}; run folder: {run_dir}"
          + (f"; MLflow parent run: {parent.run_id}" if parent.run_id else ""))
    if error is not None:
        print(f"ftlab launch: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


def _fit(rt: Any, args: list[str], env: dict[str, str], launch_dir: Path) -> Any:
    """Start (or join) Ray and run the workers; Ray Train's ``Result``."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    started = False
    if not ray.is_initialized():
        init: dict[str, Any] = {"runtime_env": {"env_vars": env}, "include_dashboard": False,
                                "log_to_driver": True}
        if rt.address:
            init["address"] = rt.address
        else:  # a local Ray sized for the workers and Ray Train's controller
            init["num_cpus"] = int(rt.num_workers * rt.cpus_per_worker) + 1
        ray.init(**init)
        started = True
    try:
        trainer = TorchTrainer(worker, train_loop_config={"args": args, "env": env},
                               scaling_config=ScalingConfig(num_workers=rt.num_workers, use_gpu=rt.use_gpu,
                                                            resources_per_worker={"CPU": rt.cpus_per_worker}),
                               run_config=RunConfig(name="ftlab", storage_path=str(launch_dir / "ray")))
        return trainer.fit()
    finally:
        if started:
            ray.shutdown()
