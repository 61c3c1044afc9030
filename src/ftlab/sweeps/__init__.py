"""Sweeps: one MLflow parent run per Hydra multirun, seed statistics, Optuna search, launchers.

The Hydra side (sweepers, launchers, their config schemas) lives in the ``hydra_plugins.ftlab_sweeps``
namespace package so Hydra discovers it; this package holds the logic. Nothing here imports optuna,
ray, submitit or mlflow at module level. See docs/sweeps.md.
"""
