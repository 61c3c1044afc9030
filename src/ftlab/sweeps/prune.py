"""Pruning of Optuna trials on the intermediate values a backend reports while it trains.

Backends know nothing of Optuna: they call ``RunContext.report({"train/eval_loss": v}, epoch)``.
In a job of a pruned search the runner wires that call to a :class:`TrialReporter`, which reports the
value to the job's trial *through the study storage* (so it works when the job runs in a joblib,
Ray or submitit worker) and asks the pruner; a pruned trial gets the user attribute
``ftlab.pruned_at_step`` and the call raises :class:`ftlab.contract.Pruned`. The driver
(:mod:`ftlab.sweeps.search`) sees the attribute and tells the study ``PRUNED``.

The driver names each job's trial with ``hydra.job.env_set.FTLAB_TRIAL=<number>`` (Hydra sets the
variable in whichever process runs the job); storage, study and pruner come from the job's own
``hydra.sweeper`` config.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Optional

log = logging.getLogger("ftlab")
TRIAL_ENV = "FTLAB_TRIAL"
STORAGE_ENV = "FTLAB_OPTUNA_STORAGE"  # the study storage, named to the job by the driver
PRUNED_ATTR = "ftlab.pruned_at_step"
PRUNERS = ("none", "median", "successive_halving", "hyperband")


def pruner_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``pruner`` block of the sweeper's options, with defaults for a missing one."""
    p = dict(options.get("pruner") or {})
    p.setdefault("name", "none")
    if p["name"] not in PRUNERS:
        raise ValueError(f"hydra.sweeper.pruner.name={p['name']!r}: use one of {', '.join(PRUNERS)}")
    if str(p.get("direction", "minimize")) not in ("minimize", "maximize"):
        raise ValueError(f"hydra.sweeper.pruner.direction={p['direction']!r}: use minimize or maximize")
    return p


def make_pruner(options: Mapping[str, Any]) -> Any:
    """An optuna pruner from ``hydra.sweeper.pruner`` (``NopPruner`` for ``none``)."""
    import optuna

    p = pruner_options(options)
    name = p["name"]
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=int(p.get("n_startup_trials", 5)),
                                           n_warmup_steps=int(p.get("n_warmup_steps", 0)),
                                           interval_steps=int(p.get("interval_steps", 1)))
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p["min_resource"] if p.get("min_resource") is not None else "auto",
            reduction_factor=int(p.get("reduction_factor", 3)),
            min_early_stopping_rate=int(p.get("min_early_stopping_rate", 0)))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=int(p["min_resource"]) if p.get("min_resource") is not None else 1,
            max_resource=int(p["max_resource"]) if p.get("max_resource") is not None else "auto",
            reduction_factor=int(p.get("reduction_factor", 3)))
    return optuna.pruners.NopPruner()


def enabled(options: Mapping[str, Any]) -> bool:
    return pruner_options(options)["name"] != "none"


class TrialReporter:
    """``RunContext.report`` for a job of a pruned search: value → trial.report → should_prune."""

    def __init__(self, study: Any, number: int, metric: str, sign: float) -> None:
        import optuna

        self.study, self.number, self.metric, self.sign = study, number, metric, sign
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        self.trial = optuna.trial.Trial(study, trial_id)
        self.reported = 0

    def __call__(self, values: Mapping[str, float], step: int) -> None:
        from ftlab.contract import Pruned

        if self.metric not in values:
            return
        value = float(values[self.metric])
        self.trial.report(self.sign * value, int(step))
        self.reported += 1
        if self.trial.should_prune():
            self.trial.set_user_attr(PRUNED_ATTR, int(step))
            log.warning("optuna trial %d pruned at step %d (%s = %.4g)", self.number, step, self.metric,
                        value)
            raise Pruned(int(step), f"optuna trial {self.number} pruned at step {step}: "
                                    f"{self.metric} = {value:.4g}")


def job_reporter(cfg: Any, intermediate_values: tuple[str, ...]) -> Optional[TrialReporter]:
    """The reporter of this job's trial, or None (not a job of a pruned Optuna search)."""
    number = os.environ.get(TRIAL_ENV)
    if not number or list(getattr(cfg, "seeds", None) or []):  # with seeds a trial's value is a mean
        return None
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return None
    options = OmegaConf.to_container(HydraConfig.get().sweeper, resolve=True)
    if options.get("method") != "optuna" or not enabled(options):
        return None
    p = pruner_options(options)
    metric = str(p.get("metric", "train/eval_loss"))
    if metric not in intermediate_values:
        log.warning("hydra.sweeper.pruner: backend %s does not report %r while it trains; optuna trial %s "
                    "runs to its end", cfg.backend.name, metric, number)
        return None
    from ftlab.sweeps.search import load_study

    study = load_study(cfg, options)
    maximize = str(cfg.sweep.direction).endswith("maximize")
    sign = 1.0 if (str(p.get("direction", "minimize")) == "maximize") == maximize else -1.0
    return TrialReporter(study, int(number), metric, sign)
