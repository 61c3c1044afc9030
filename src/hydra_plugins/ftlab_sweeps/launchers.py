"""ftlab's launchers: one job per device (``ftlab_devices``) and Ray tasks (``ftlab_ray``)."""

from typing import Any, Dict, List, Optional, Sequence

from hydra.plugins import launcher as _launcher


class _Base(_launcher.Launcher):
    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config


class DeviceLauncher(_Base):
    """Pins each job to one device with CUDA_VISIBLE_DEVICES and queues the rest; CPU-only machines
    get ``n_jobs`` local processes with the cores split between them (ftlab.sweeps.launch)."""

    def __init__(self, devices: Optional[List[Any]] = None, n_jobs: int = 2) -> None:
        self.devices, self.n_jobs = (list(devices) if devices is not None else None), n_jobs

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from ftlab.sweeps.launch import launch_pinned

        return launch_pinned(self, job_overrides, initial_job_idx)


class RayLauncher(_Base):
    """Runs each job as a Ray task; ``init`` goes to ray.init, ``remote`` to the task's options."""

    def __init__(self, init: Dict[str, Any], remote: Dict[str, Any], shutdown: bool = False) -> None:
        self.init, self.remote, self.shutdown = init, remote, shutdown

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from ftlab.sweeps.launch import launch_ray

        return launch_ray(self, job_overrides, initial_job_idx)
