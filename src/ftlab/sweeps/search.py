"""Seeds for the grid sweeper and the resumable Optuna search (``hydra.sweeper.method=optuna``).

Why not hydra-optuna-sweeper: it pins optuna<3, whose RDB storage fails on the SQLAlchemy 2 that
MLflow needs (docs/pitfalls.md), so its studies cannot persist. This one runs on optuna 4/5.

Resume rule: the study (storage + name) is the record. ``n_trials`` counts every finished trial
(complete, pruned, failed) of the study, whoever ran it; a trial left RUNNING by a dead driver on this
host is COMPLETE if its jobs recorded their results, else interrupted (FAIL with ``ftlab.interrupted``,
not counted) and its parameters are enqueued once. A job whose process was killed is handled the same
way while the driver lives, and the MLflow runs of killed attempts are ended KILLED
(:mod:`ftlab.sweeps.attempts`).

Pruning (``hydra.sweeper.pruner``, :mod:`ftlab.sweeps.prune`): each job learns its trial number from
``FTLAB_TRIAL`` and reports to the trial itself; a job whose trial was pruned leaves the user attribute
``ftlab.pruned_at_step`` and the driver tells the study PRUNED (also on resume after a dead driver).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from ftlab.sweeps.context import SEED_KEYS, objective_key
from ftlab.sweeps.prune import STORAGE_ENV, TRIAL_ENV, enabled

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

    def _recover(self, study: Any, per: int) -> None:
        """Trials left RUNNING by a dead driver: complete from their jobs' recorded results (or
        pruned), else interrupted and their parameters enqueued once."""
        from optuna.trial import TrialState

        from ftlab.sweeps.attempts import settle

        waiting = [t.params for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if _alive(str(t.user_attrs.get("ftlab.driver", ""))):
                continue
            if t.params in waiting:  # queued again already: only end this attempt
                study._storage.set_trial_user_attr(t._trial_id, "ftlab.interrupted", True)
                study.tell(t.number, state=TrialState.FAIL)
                continue
            state = settle(study, t, None, per, self._objective())
            log.info("optuna: trial %d of a driver that died: %s", t.number, state)

    def _objective(self) -> str:
        """The metric a job's run folder is read for when its return was lost ("" if not known)."""
        try:
            return objective_key(self.config)
        except Exception:  # a config without stages/eval (tests drive the loop with a stub)
            return ""

    def _mark_killed(self, study: Any) -> None:
        from ftlab.sweeps.attempts import mark_killed_attempts
        from ftlab.tracking.mlflow_tracker import resolve_tracking_uri

        if OmegaConf.select(self.config, "tracking.enabled", default=True):
            uri = resolve_tracking_uri(OmegaConf.select(self.config, "tracking.uri", default=None))
            mark_killed_attempts(study, uri, recorded_parent(study))

    @staticmethod
    def finished(study: Any) -> int:
        from optuna.trial import TrialState

        done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return sum(1 for t in study.get_trials(deepcopy=False, states=done)
                   if not t.user_attrs.get("ftlab.interrupted"))

    def run(self, arguments: list[str]) -> Any:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from ftlab.sweeps.attempts import settle

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
        per = max(1, len(seeds))
        self._recover(study, per)
        self._mark_killed(study)
        study.sampler = self._sampler(len(study.trials))
        done = self.finished(study)
        log.info("optuna study %r: %d of %d trials finished", study.study_name, done, self.n_trials)
        results = []
        while done < self.n_trials:
            trials = [study.ask(dists) for _ in range(min(self.n_jobs, self.n_trials - done))]
            jobs: list[list[str]] = []
            for t in trials:
                t.set_user_attr("ftlab.driver", self.driver)
                # names the trial and its storage to the job, in whichever process it runs: the job
                # records its result there (and reports to its pruner)
                base = fixed + [f"{k}={v}" for k, v in t.params.items()]
                base += [f"++hydra.job.env_set.{TRIAL_ENV}={t.number}",
                         f"++hydra.job.env_set.{STORAGE_ENV}={study_storage}"]
                if seeds:
                    jobs += [base + [f"seed={s}", "train.seed=${seed}"] for s in seeds]
                else:
                    jobs.append(base)
            try:
                returns = self.launcher.launch(jobs, initial_job_idx=trials[0].number * per)
            except Exception as exc:  # e.g. joblib's TerminatedWorkerError: what each job recorded tells
                log.warning("optuna: the launcher failed (%s: %s); each trial is settled from what its "
                            "jobs recorded", type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "")
                returns = None
            for i, t in enumerate(trials):
                settle(study, t, returns[i * per:(i + 1) * per] if returns is not None else None, per,
                       self._objective())
            results.append(returns)
            done = self.finished(study)
        self._mark_killed(study)
        try:
            best = study.best_trial
            log.info("optuna best trial %d: %s = %s", best.number, best.params, best.value)
        except ValueError:
            log.warning("optuna study %r has no completed trial", study.study_name)
        return results
