"""Job execution for ftlab's launchers: one job per device (local processes) and Ray tasks.

Both run a Hydra job the way Hydra's own joblib launcher does (``execute_job``), in another process:
the job's config, the task function and Hydra's singletons travel pickled; ``env`` is applied first
(CUDA_VISIBLE_DEVICES, thread counts, ``$FTLAB_SWEEP``), so it holds before torch is imported.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

log = logging.getLogger("ftlab")
FORWARD_ENV = ("FTLAB_SWEEP", "MLFLOW_TRACKING_URI", "FTLAB_HOME")


def execute_job(idx: int, overrides: Sequence[str], hydra_context: Any, config: Any,
                task_function: Any, singleton_state: dict, env: dict[str, str]) -> Any:
    """Run one Hydra job in this process (a worker); returns Hydra's JobReturn."""
    os.environ.update(env)
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job, setup_globals
    from omegaconf import open_dict

    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    return run_job(hydra_context=hydra_context, config=sweep_config, task_function=task_function,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def _set_env(env: dict[str, str]) -> None:
    """Worker start: its environment, and (Linux) SIGKILL when the driver dies, so a job never
    outlives the search that launched it (a restarted search would run its trial again beside it)."""
    os.environ.update(env)
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_pickled(payload: bytes) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(execute_job(*cloudpickle.loads(payload)))


def _prepare(launcher: Any, job_overrides: Sequence[Sequence[str]]) -> tuple[Any, dict]:
    from hydra.core.singleton import Singleton
    from hydra.core.utils import configure_log, filter_overrides, setup_globals

    setup_globals()
    cfg = launcher.config
    configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    Path(str(cfg.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    for i, ov in enumerate(job_overrides):
        log.info("\t#%d : %s", i, " ".join(filter_overrides(ov)))
    return Singleton.get_state(), {k: os.environ[k] for k in FORWARD_ENV if k in os.environ}


def gpu_ids() -> list[str]:
    """GPU indices from nvidia-smi (no torch import in the driver); [] without a GPU."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def slots(devices: Optional[Sequence[Any]], n_jobs: int) -> list[dict[str, str]]:
    """The environment of each concurrent worker: one per device, else ``n_jobs`` CPU workers."""
    found = [str(d) for d in devices] if devices is not None else gpu_ids()
    count = len(found) if found else max(1, min(n_jobs, _cores()))
    threads = str(max(1, _cores() // count))
    common = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "FTLAB_JOB_THREADS": threads}
    if found:
        return [{**common, "CUDA_VISIBLE_DEVICES": d} for d in found]
    return [{**common, "CUDA_VISIBLE_DEVICES": ""} for _ in range(count)]


def _slot_pool(launcher: Any, k: int, env: dict[str, str]) -> Any:
    """Slot ``k``'s worker process, kept across launches (a search launches batch after batch; a fresh
    process per batch paid the imports every time). Started from the calling (main) thread, since
    the driver-death signal of :func:`_set_env` follows the thread that started the process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pools = launcher.__dict__.setdefault("_ftlab_pools", {})
    key = json.dumps(env, sort_keys=True)
    have = pools.get(k)
    if have is not None and have[0] == key and not getattr(have[1], "_broken", False):
        return have[1]
    if have is not None:
        have[1].shutdown(wait=False, cancel_futures=True)
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_set_env, initargs=(env,))
    pool.submit(int).result()  # start it now, in this thread
    pools[k] = (key, pool)
    return pool


def launch_pinned(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
    """Each slot is a worker process (spawn) whose environment pins it; jobs wait in one queue. A job
    whose process dies is returned as died (:func:`ftlab.sweeps.attempts.died`) and its slot gets a
    fresh process for the jobs still queued."""
    from concurrent.futures.process import BrokenProcessPool

    import cloudpickle

    from ftlab.sweeps.attempts import died

    state, forwarded = _prepare(launcher, job_overrides)
    envs = slots(launcher.devices, launcher.n_jobs)
    log.info("ftlab_devices: %d jobs on %d slots (%s)", len(job_overrides), len(envs),
             ", ".join(e["CUDA_VISIBLE_DEVICES"] or "cpu" for e in envs))
    todo: "queue.Queue[int]" = queue.Queue()
    for i in range(len(job_overrides)):
        todo.put(i)
    results: list[Any] = [None] * len(job_overrides)
    errors: list[BaseException] = []

    def worker(pool: Any, env: dict[str, str]) -> None:
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                payload = cloudpickle.dumps((initial_job_idx + i, list(job_overrides[i]),
                                             launcher.hydra_context, launcher.config,
                                             launcher.task_function, state, {**forwarded, **env}))
                results[i] = cloudpickle.loads(pool.submit(_run_pickled, payload).result())
            except BrokenProcessPool as exc:  # the job's process was killed: that job died
                log.warning("ftlab_devices: job %d's process died (%s)", initial_job_idx + i, exc)
                results[i] = died(f"job {initial_job_idx + i}'s process died before it returned "
                                  f"({type(exc).__name__})")
                return  # this slot's process is gone: a fresh one takes the rest
            except BaseException as exc:  # anything else: report, keep the queue going
                errors.append(exc)
                results[i] = died(f"job {initial_job_idx + i} could not run: {exc!r}")

    while not todo.empty():
        pools = [_slot_pool(launcher, k, env) for k, env in enumerate(envs)]
        threads = [threading.Thread(target=worker, args=(p, e), daemon=True) for p, e in zip(pools, envs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if any(r is None for r in results):
        raise RuntimeError(f"ftlab_devices: {len(errors)} worker(s) crashed: {errors[:1]}")
    return results


def launch_ray(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
    """Each job a Ray task with ``remote`` resources; ``ray.init(**init)`` unless Ray is running."""
    import ray
    from omegaconf import OmegaConf

    state, forwarded = _prepare(launcher, job_overrides)
    if not ray.is_initialized():
        ray.init(**OmegaConf.to_container(launcher.init, resolve=True))
    options = OmegaConf.to_container(launcher.remote, resolve=True)
    task = ray.remote(execute_job).options(**options)
    refs = [task.remote(initial_job_idx + i, list(ov), launcher.hydra_context, launcher.config,
                        launcher.task_function, state, forwarded)
            for i, ov in enumerate(job_overrides)]
    try:
        return ray.get(refs)
    finally:
        if launcher.shutdown:
            ray.shutdown()
