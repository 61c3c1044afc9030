"""ftlab's sweepers: the grid sweeper with seeds, and the resumable Optuna sweeper."""

from typing import Any, List, Optional

from hydra._internal.core_plugins import basic_sweeper as _basic
from hydra.plugins import sweeper as _sweeper


class FtlabSweeper(_basic.BasicSweeper):
    """Hydra's grid sweeper; ``seeds=[1,2,3]`` adds the sweep ``seed=1,2,3`` with ``train.seed=${seed}``."""

    def sweep(self, arguments: List[str]) -> Any:
        from ftlab.sweeps.search import seed_arguments

        assert self.config is not None
        return super().sweep(seed_arguments(list(arguments), self.config))


class FtlabOptunaSweeper(_sweeper.Sweeper):
    """Optuna search on a persistent study; the loop is ``ftlab.sweeps.search.Search``."""

    def __init__(self, n_trials: int, n_jobs: int, study_name: Optional[str], storage: Optional[str],
                 sampler: str, seed: Optional[int], params: Any) -> None:
        self.options = dict(n_trials=n_trials, n_jobs=n_jobs, study_name=study_name, storage=storage,
                            sampler=sampler, seed=seed, params=dict(params or {}))
        self.hydra_context: Any = None
        self.config: Any = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from ftlab.sweeps.search import Search

        return Search(self.config, self.launcher, **self.options).run(list(arguments))
