"""Schemas of ftlab's sweepers and launchers, stored in Hydra's ConfigStore at plugin scan.

    hydra/sweeper=ftlab          (default) grid: Hydra's basic sweeper + ``seeds=[...]``;
                                 hydra.sweeper.method=optuna: resumable Optuna search
    hydra/sweeper=ftlab_optuna   the same with method=optuna
    hydra/launcher=ftlab_devices one job per GPU (CUDA_VISIBLE_DEVICES), local processes on CPU
    hydra/launcher=ftlab_ray     jobs as Ray tasks (a local Ray, or ray.init(address=...))
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

_HERE = "hydra_plugins.ftlab_sweeps"


@dataclass
class PrunerConf:
    """optuna: stop hopeless trials early on the intermediate values a backend reports while it trains
    (``Capabilities.intermediate_values``, e.g. ``train/eval_loss`` after each epoch, listed by
    ``ftlab plugins``). Backends that report none are never pruned."""

    name: str = "none"
    """none, median (optuna MedianPruner), successive_halving or hyperband."""
    metric: str = "train/eval_loss"
    """The intermediate value the pruner compares, as the backend reports it."""
    direction: str = "minimize"
    """Whether ``metric`` is better low (a loss: minimize) or high; when it differs from
    ``sweep.direction`` the study stores it negated, so the pruner compares it the study's way."""
    n_startup_trials: int = 5
    """median: trials that finish unpruned before pruning starts."""
    n_warmup_steps: int = 0
    """median: steps (as the backend counts them, e.g. epochs) of each trial that are never pruned."""
    interval_steps: int = 1
    """median: check every N steps."""
    min_resource: Optional[int] = None
    """successive_halving / hyperband: steps a trial gets before it can be pruned (null: optuna's
    default, auto for successive halving, 1 for hyperband)."""
    max_resource: Optional[int] = None
    """hyperband: steps of a full trial (null = auto: the longest trial seen)."""
    reduction_factor: int = 3
    """successive_halving / hyperband: keep the best 1/N of trials at each rung."""
    min_early_stopping_rate: int = 0
    """successive_halving: rungs of every trial that are never pruned."""


@dataclass
class FtlabSweeperConf:
    """ftlab's sweeper: ``method: grid`` is Hydra's basic sweeper times ``seeds``; ``method: optuna``
    a resumable Optuna search over ``params``. One schema, so an experiment file switches to a
    search by setting keys (an experiment cannot re-override a group the primary config overrides)."""

    _target_: str = f"{_HERE}.sweepers.FtlabSweeper"
    method: str = "grid"
    """grid (every combination of the sweep overrides) or optuna (search)."""
    params: Optional[Dict[str, str]] = None
    """grid: extra sweep overrides; optuna: the search space, key -> choice(a,b) | range(1,4) |
    interval(lo,hi) | int(interval(..)) | tag(log, interval(..))."""
    max_batch_size: Optional[int] = None
    """grid: jobs per launcher batch (null = all at once)."""
    n_trials: int = 20
    """optuna: total trials of the study, counting trials finished by earlier (interrupted) runs."""
    n_jobs: int = 1
    """optuna: trials launched at once (one launcher batch)."""
    study_name: Optional[str] = None
    """optuna: null = the experiment name."""
    storage: Optional[str] = None
    """optuna: storage URL; null = sqlite file optuna.db beside the MLflow sqlite store."""
    sampler: str = "tpe"
    """optuna: tpe or random."""
    seed: Optional[int] = None
    """optuna: sampler seed (offset by the number of existing trials on resume, so nothing repeats)."""
    pruner: PrunerConf = field(default_factory=PrunerConf)
    """optuna: early stopping of trials on intermediate values (off by default)."""


@dataclass
class FtlabOptunaSweeperConf(FtlabSweeperConf):
    """``hydra/sweeper=ftlab_optuna``: the same sweeper with ``method: optuna``."""

    method: str = "optuna"


@dataclass
class DeviceLauncherConf:
    """One job per device at a time; the rest wait in a queue."""

    _target_: str = f"{_HERE}.launchers.DeviceLauncher"
    devices: Optional[List[str]] = None
    """Device ids for CUDA_VISIBLE_DEVICES; null = every GPU nvidia-smi lists (none → CPU)."""
    n_jobs: int = 2
    """Concurrent jobs when there is no GPU (CPU threads are split between them)."""


@dataclass
class RayLauncherConf:
    """Each job a Ray task; ``init`` is passed to ``ray.init`` (address=auto/ray://... for a cluster)."""

    _target_: str = f"{_HERE}.launchers.RayLauncher"
    init: Dict[str, Any] = field(default_factory=lambda: {"include_dashboard": False})
    """Keyword arguments of ray.init, e.g. address, num_cpus, runtime_env."""
    remote: Dict[str, Any] = field(default_factory=lambda: {"num_cpus": 1})
    """Resources per job (ray.remote options): num_cpus, num_gpus, memory, resources."""
    shutdown: bool = False
    """Call ray.shutdown() after the sweep (a local Ray started by this sweep only)."""


cs = ConfigStore.instance()
cs.store(group="hydra/sweeper", name="ftlab", node=FtlabSweeperConf, provider="ftlab")
cs.store(group="hydra/sweeper", name="ftlab_optuna", node=FtlabOptunaSweeperConf, provider="ftlab")
cs.store(group="hydra/launcher", name="ftlab_devices", node=DeviceLauncherConf, provider="ftlab")
cs.store(group="hydra/launcher", name="ftlab_ray", node=RayLauncherConf, provider="ftlab")


def _multirun_if_seeds(seeds: Any) -> Optional[str]:
    """``hydra.mode: ${ftlab_mode:${seeds}}``: a run with several seeds becomes a multirun."""
    return "MULTIRUN" if seeds is not None and len(seeds) > 0 else None


OmegaConf.register_new_resolver("ftlab_mode", _multirun_if_seeds, replace=True)
