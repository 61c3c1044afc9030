"""ftlab's sweeper: a grid with seeds (Hydra's basic sweeper) or a resumable Optuna search."""

from typing import Any, Dict, List, Optional

from hydra.plugins import sweeper as _sweeper


class FtlabSweeper(_sweeper.Sweeper):
    """``method=grid``: ``seeds=[1,2,3]`` adds the sweep ``seed=1,2,3`` with ``train.seed=${seed}``,
    then Hydra's basic sweeper runs every combination. ``method=optuna``: ``ftlab.sweeps.search``."""

    def __init__(self, method: str, params: Optional[Dict[str, str]], max_batch_size: Optional[int],
                 **optuna_options: Any) -> None:
        if method not in ("grid", "optuna"):
            raise ValueError(f"hydra.sweeper.method={method!r}: use grid or optuna")
        self.method, self.params, self.max_batch_size = method, dict(params or {}), max_batch_size
        self.optuna_options = optuna_options
        self.setup_args: Dict[str, Any] = {}
        self.config: Any = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        self.setup_args = dict(hydra_context=hydra_context, task_function=task_function, config=config)
        self.config = config
        if self.method == "optuna":
            self.launcher = Plugins.instance().instantiate_launcher(**self.setup_args)

    def sweep(self, arguments: List[str]) -> Any:
        from ftlab.sweeps.parent import finish_active

        try:
            return self._sweep(arguments)
        except BaseException:  # a failed job stops Hydra's grid: rank what ran, close the parent
            finish_active(failed=True)
            raise

    def _sweep(self, arguments: List[str]) -> Any:
        from ftlab.sweeps.search import Search, seed_arguments

        if self.method == "optuna":
            return Search(self.config, self.launcher, params=self.params, **self.optuna_options).run(
                list(arguments))
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        grid = BasicSweeper(max_batch_size=self.max_batch_size, params=self.params or None)
        grid.setup(**self.setup_args)
        return grid.sweep(seed_arguments(list(arguments), self.config))
