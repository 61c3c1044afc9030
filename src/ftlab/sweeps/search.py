"""Seeds for the grid sweeper and the resumable Optuna search (``hydra.sweeper.method=optuna``).

Why not hydra-optuna-sweeper: it pins optuna<3, whose RDB storage fails on the SQLAlchemy 2 that
MLflow needs (docs/pitfalls.md), so its studies cannot persist. This one runs on optuna 4/5.

Resume rule: the study (storage + name) is the record. ``n_trials`` counts every finished trial
(complete, pruned, failed) of the study, whoever ran it; a trial left RUNNING by a dead driver on this
host is marked failed (``ftlab.interrupted``, not counted) and its parameters are enqueued once.

Pruning (``hydra.sweeper.pruner``, :mod:`ftlab.sweeps.prune`): each job learns its trial number from
``FTLAB_TRIAL`` and reports to the trial itself; a job whose trial was pruned leaves the user attribute
``ftlab.pruned_at_step`` and the driver tells the study PRUNED (also on resume after a dead driver).
"""

from __future__ import annotations

import logging
import math
import os
import socket
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from ftlab.sweeps.context import SEED_KEYS
from ftlab.sweeps.prune import PRUNED_ATTR, STORAGE_ENV, TRIAL_ENV, enabled

log = logging.getLogger("ftlab")
PARENT_ATTR = "ftlab.mlflow_parent_run_id"


def _keys(arguments: list[str]) -> set[str]:
    return {a.split("=", 1)[0].lstrip("+~") for a in arguments}


def seed_arguments(arguments: list[str], config: DictConfig) -> list[str]:
    """Add ``seed=<seeds>`` (a sweep) and ``train.seed=${seed}`` to a grid's arguments."""
    seeds = list(OmegaConf.select(config, "seeds", default=None) or [])
    given = _keys(arguments)
    out = list(arguments)
    if seeds and "seed" not in given:
        out.append("seed=" + ",".join(str(int(s)) for s in seeds))
    if (seeds or "seed" in given) and "train.seed" not in given:
        out.append("train.seed=${seed}")
    return out


def storage_url(storage: Optional[str], tracking_uri: str) -> str:
    """``storage`` if set, else ``sqlite:///<folder of the MLflow sqlite db>/optuna.db``."""
    if storage:
        return storage
    if tracking_uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(tracking_uri[len('sqlite:///'):]).parent / 'optuna.db'}"
    from ftlab.paths import project_root

    return f"sqlite:///{project_root() / 'optuna.db'}"


def study_url(config: Any, options: dict) -> str:
    """Where the study lives: what the sweep told this job (``FTLAB_OPTUNA_STORAGE``), else the
    sweeper's ``storage``, else next to the MLflow sqlite store."""
    from ftlab.tracking.mlflow_tracker import resolve_tracking_uri

    return os.environ.get(STORAGE_ENV) or storage_url(options.get("storage"),
                                                      resolve_tracking_uri(config.tracking.uri))


def load_study(config: Any, options: dict, create: bool = True) -> Any:
    """The study named by the sweeper ``options`` (storage, study_name, pruner) for ``config``."""
    import optuna

    from ftlab.sweeps.prune import make_pruner

    url = study_url(config, options)
    name = options.get("study_name") or str(config.experiment)
    maximize = str(config.sweep.direction).endswith("maximize")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = make_pruner(options)
    if not create:
        try:
            return optuna.load_study(study_name=name, storage=url, pruner=pruner)
        except KeyError:
            return None
    return optuna.create_study(study_name=name, storage=url, load_if_exists=True, pruner=pruner,
                               direction="maximize" if maximize else "minimize")


def study_of(config: DictConfig) -> Any:
    """The Optuna study of a multirun driven by the ftlab Optuna sweeper, else None."""
    sw = OmegaConf.select(config, "hydra.sweeper", default=None)
    if sw is None or sw.get("method") != "optuna":
        return None
    return load_study(config, OmegaConf.to_container(sw, resolve=True))


def recorded_parent(study: Any) -> Optional[str]:
    return study.user_attrs.get(PARENT_ATTR)


def record_parent(study: Any, run_id: str) -> None:
    study.set_user_attr(PARENT_ATTR, run_id)


def distributions(space: dict[str, str]) -> dict[str, Any]:
    """Hydra sweep syntax → Optuna distributions (as hydra-optuna-sweeper reads it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep, Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    parser = OverridesParser.create()
    out: dict[str, Any] = {}
    for key, text in space.items():
        ov = parser.parse_override(f"{key}={text}")
        if ov.is_choice_sweep() or ov.is_range_sweep():
            out[key] = CategoricalDistribution(list(ov.sweep_iterator(transformer=Transformer.encode)))
        elif ov.is_interval_sweep():
            v = ov.value()
            assert isinstance(v, IntervalSweep)
            log_scale = "log" in v.tags
            if isinstance(v.start, int) and isinstance(v.end, int):
                out[key] = IntDistribution(v.start, v.end, log=log_scale)
            else:
                out[key] = FloatDistribution(float(v.start), float(v.end), log=log_scale)
        else:
            raise ValueError(f"search space {key}={text}: use choice(..), range(..) or interval(..)")
    return out


def _alive(driver: str) -> bool:
    host, _, pid = driver.rpartition(":")
    if host != socket.gethostname():
        return True  # cannot tell from here: leave it to its own host
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True


class Search:
    """The ask → launch → tell loop, one launcher batch of ``n_jobs`` trials at a time."""

    def __init__(self, config: DictConfig, launcher: Any, n_trials: int, n_jobs: int,
                 study_name: Optional[str], storage: Optional[str], sampler: str, seed: Optional[int],
                 params: dict[str, str], pruner: Optional[dict] = None) -> None:
        self.config, self.launcher = config, launcher
        self.n_trials, self.n_jobs = n_trials, max(1, n_jobs)
        self.options = {"study_name": study_name, "storage": storage, "pruner": dict(pruner or {})}
        self.sampler_name, self.seed, self.space = sampler, seed, dict(params)
        self.driver = f"{socket.gethostname()}:{os.getpid()}"

    def _sampler(self, n_existing: int) -> Any:
        import optuna

        seed = None if self.seed is None else self.seed + n_existing
        if self.sampler_name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.sampler_name == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        raise ValueError(f"hydra.sweeper.sampler={self.sampler_name!r}: use tpe or random")

    def _recover(self, study: Any) -> None:
        """Trials left RUNNING by a dead driver: mark failed, enqueue their parameters once."""
        from optuna.trial import TrialState

        waiting = [t.params for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if _alive(str(t.user_attrs.get("ftlab.driver", ""))):
                continue
            if PRUNED_ATTR in t.user_attrs:  # its job was pruned before the driver died: done
                study.tell(t.number, state=TrialState.PRUNED)
                continue
            study._storage.set_trial_user_attr(t._trial_id, "ftlab.interrupted", True)
            study.tell(t.number, state=TrialState.FAIL)
            if t.params and t.params not in waiting:
                study.enqueue_trial(t.params, user_attrs={"ftlab.retry_of": t.number})
                waiting.append(t.params)
            log.info("optuna: trial %d was interrupted; its parameters are queued again", t.number)

    @staticmethod
    def finished(study: Any) -> int:
        from optuna.trial import TrialState

        done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return sum(1 for t in study.get_trials(deepcopy=False, states=done)
                   if not t.user_attrs.get("ftlab.interrupted"))

    def run(self, arguments: list[str]) -> Any:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from optuna.trial import TrialState

        space = dict(self.space)
        fixed = []
        for ov in OverridesParser.create().parse_overrides(arguments):
            if ov.is_sweep_override():
                space[ov.get_key_element()] = ov.input_line.split("=", 1)[1]
            else:  # a plain override of a key of the space fixes it: it leaves the space
                fixed.append(ov.input_line)
                space.pop(ov.get_key_element().lstrip("+~"), None)
        dists = distributions(space)
        seeds = [int(s) for s in (OmegaConf.select(self.config, "seeds", default=None) or [])]
        study = load_study(self.config, self.options)
        # the job is told the storage instead of resolving it again: a worker process (joblib's
        # reused workers, Ray) may carry another environment (MLFLOW_TRACKING_URI) than this driver
        study_storage = study_url(self.config, self.options)
        prune = enabled(self.options)
        if prune and seeds:
            log.warning("hydra.sweeper.pruner is ignored with seeds: a trial's value is a mean over seeds")
            prune = False
        self._recover(study)
        study.sampler = self._sampler(len(study.trials))
        done = self.finished(study)
        log.info("optuna study %r: %d of %d trials finished", study.study_name, done, self.n_trials)
        results = []
        while done < self.n_trials:
            trials = [study.ask(dists) for _ in range(min(self.n_jobs, self.n_trials - done))]
            jobs: list[list[str]] = []
            for t in trials:
                t.set_user_attr("ftlab.driver", self.driver)
                base = fixed + [f"{k}={v}" for k, v in t.params.items()]
                if prune:  # names the trial and its storage to the job, in whichever process it runs
                    base += [f"++hydra.job.env_set.{TRIAL_ENV}={t.number}",
                             f"++hydra.job.env_set.{STORAGE_ENV}={study_storage}"]
                if seeds:
                    jobs += [base + [f"seed={s}", "train.seed=${seed}"] for s in seeds]
                else:
                    jobs.append(base)
            per = max(1, len(seeds))
            returns = self.launcher.launch(jobs, initial_job_idx=trials[0].number * per)
            for i, t in enumerate(trials):
                if prune and PRUNED_ATTR in study._storage.get_trial(t._trial_id).user_attrs:
                    study.tell(t, state=TrialState.PRUNED)  # value: its last intermediate value
                    continue
                values = []
                for r in returns[i * per:(i + 1) * per]:
                    try:
                        values.append(float(r.return_value))
                    except Exception as exc:  # a failed job: its trial fails, the search goes on
                        log.warning("optuna: trial %d job failed: %s", t.number, exc)
                values = [v for v in values if not math.isnan(v)]
                if len(values) == per:
                    study.tell(t, sum(values) / per)
                else:
                    study.tell(t, state=TrialState.FAIL)
            results.append(returns)
            done = self.finished(study)
        try:
            best = study.best_trial
            log.info("optuna best trial %d: %s = %s", best.number, best.params, best.value)
        except ValueError:
            log.warning("optuna study %r has no completed trial", study.study_name)
        return results
