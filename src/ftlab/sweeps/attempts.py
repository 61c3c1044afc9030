"""A search that survives crashes: each job tells the study its own result, killed attempts are retried
once per trial slot and marked KILLED in MLflow.

- **Jobs record their result.** Every job of a search learns its trial from ``FTLAB_TRIAL`` (and the
  storage from ``FTLAB_OPTUNA_STORAGE``); it writes its run folder to the trial when it starts
  (``ftlab.run_dir.<job number>``) and the objective when its run returns (``ftlab.job.<job number>``,
  :func:`record_job_value`). A driver that lost the job's return (the job process or the driver
  itself was killed after the run ended) reads the value there, or from the run folder when the run
  ended FINISHED but was killed before recording it: the trial is COMPLETE, never run twice.
- **A killed attempt is retried.** A job whose process died (SIGKILL, OOM) before recording a result
  leaves its trial *interrupted*: FAIL with ``ftlab.interrupted`` (not counted), its parameters
  enqueued again as a new trial (``ftlab.retry_of``, ``ftlab.attempt``), at most
  :data:`MAX_ATTEMPTS` times; after that the trial stays FAIL and counts.
- **MLflow tells the truth.** The MLflow run of a killed attempt stays RUNNING forever (its process
  could not end it). :func:`mark_killed_attempts` ends every such child of the sweep's parent run
  KILLED, with tags ``ftlab.killed=true``, ``ftlab.optuna.trial`` (the attempt's trial) and
  ``ftlab.retried_as`` (the trial that ran its parameters again).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Optional, Sequence

from ftlab.sweeps.prune import PRUNED_ATTR, STORAGE_ENV, TRIAL_ENV

log = logging.getLogger("ftlab")
JOB_ATTR = "ftlab.job."
RUN_DIR_ATTR = "ftlab.run_dir."
INTERRUPTED = "ftlab.interrupted"
MAX_ATTEMPTS = 3


class JobDied(RuntimeError):
    """A launcher's result for a job whose process ended without returning (killed, crashed)."""


def died(message: str) -> Any:
    """A failed Hydra ``JobReturn`` holding :class:`JobDied`, for a launcher to return."""
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn()
    ret.status, ret.return_value = JobStatus.FAILED, JobDied(message)
    return ret


def _record(cfg: Any, key: str, value: Any) -> None:
    """In a job of a search: set user attribute ``<key><job number>`` on the job's trial."""
    number = os.environ.get(TRIAL_ENV)
    if not number or not os.environ.get(STORAGE_ENV):
        return
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    options = OmegaConf.to_container(hc.sweeper, resolve=True)
    if options.get("method") != "optuna":
        return
    from ftlab.sweeps.search import load_study

    try:
        study = load_study(cfg, options, create=False)
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, int(number))
        study._storage.set_trial_user_attr(trial_id, f"{key}{hc.job.num}", value)
    except Exception as exc:  # a finished trial (a retried attempt's) or a storage hiccup: the return still counts
        log.warning("optuna trial %s: could not record %s in the study: %s", number, key, exc)


def record_job_start(cfg: Any) -> None:
    """In a job of a search, before its run: the run folder, on the trial (``ftlab.run_dir.<num>``)."""
    if os.environ.get(TRIAL_ENV):
        from hydra.core.hydra_config import HydraConfig

        _record(cfg, RUN_DIR_ATTR, str(HydraConfig.get().runtime.output_dir))


def record_job_value(cfg: Any, value: float) -> None:
    """In a job of a search: write the run's objective to its trial (``ftlab.job.<num>``)."""
    _record(cfg, JOB_ATTR, float(value))


def job_numbers(number: int, per: int) -> list[int]:
    """The Hydra job numbers of trial ``number`` (one per seed)."""
    return [number * per + i for i in range(per)]


def _from_folder(attrs: dict, num: int, objective: str) -> Optional[float]:
    """A job's objective from its run folder, if the run ended FINISHED (killed before it recorded it)."""
    from pathlib import Path

    from ftlab.runs import folder_result

    folder = attrs.get(f"{RUN_DIR_ATTR}{num}")
    return folder_result(Path(folder), objective) if folder and objective else None


def settle(study: Any, trial: Any, returns: Optional[Sequence[Any]], per: int, objective: str) -> str:
    """Tell the study how trial ``trial`` ended, from its jobs' returns (None: the launch itself failed),
    what its jobs recorded and their run folders (``objective``: the metric the trial optimises);
    returns the state told: complete, pruned, failed or interrupted."""
    from optuna.trial import TrialState

    attrs = study._storage.get_trial(trial._trial_id).user_attrs
    if PRUNED_ATTR in attrs:
        study.tell(trial.number, state=TrialState.PRUNED)  # value: its last intermediate value
        return "pruned"
    values, lost, failed = [], False, False
    for i, num in enumerate(job_numbers(trial.number, per)):
        if f"{JOB_ATTR}{num}" in attrs:
            values.append(float(attrs[f"{JOB_ATTR}{num}"]))
            continue
        r = returns[i] if returns is not None else None
        if r is None or isinstance(getattr(r, "_return_value", None), JobDied):
            found = _from_folder(attrs, num, objective)
            if found is not None:
                values.append(found)
                continue
        if r is None:
            lost = True
            continue
        try:
            values.append(float(r.return_value))
        except JobDied as exc:
            lost = True
            log.warning("optuna: trial %d: %s", trial.number, exc)
        except Exception as exc:  # a failed job: its trial fails, the search goes on
            failed = True
            log.warning("optuna: trial %d job failed: %s", trial.number, exc)
    if lost and not failed:
        return interrupt(study, trial, attrs)
    values = [v for v in values if not math.isnan(v)]
    if len(values) == per and not failed:
        study.tell(trial.number, sum(values) / per)
        return "complete"
    study.tell(trial.number, state=TrialState.FAIL)
    return "failed"


def interrupt(study: Any, trial: Any, attrs: Optional[dict] = None) -> str:
    """A trial whose attempt was killed: FAIL, not counted, its parameters queued again (bounded)."""
    from optuna.trial import TrialState

    attrs = attrs if attrs is not None else trial.user_attrs
    attempt = int(attrs.get("ftlab.attempt", 1))
    if attempt >= MAX_ATTEMPTS:
        log.warning("optuna: trial %d was interrupted on its attempt %d of %d: it fails and counts",
                    trial.number, attempt, MAX_ATTEMPTS)
        study.tell(trial.number, state=TrialState.FAIL)
        return "failed"
    study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
    study.tell(trial.number, state=TrialState.FAIL)
    if trial.params:
        study.enqueue_trial(trial.params, user_attrs={"ftlab.retry_of": trial.number,
                                                      "ftlab.attempt": attempt + 1})
    log.warning("optuna: trial %d was interrupted (attempt %d); its parameters are queued again",
                trial.number, attempt)
    return "interrupted"


def mark_killed_attempts(study: Any, tracking_uri: str, parent_run_id: Optional[str]) -> int:
    """End KILLED every child run of ``parent_run_id`` still RUNNING whose trial was interrupted."""
    if not parent_run_id:
        return 0
    from mlflow.tracking import MlflowClient

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    retried = {int(t.user_attrs["ftlab.retry_of"]): t.number for t in trials.values()
               if "ftlab.retry_of" in t.user_attrs}
    marked = 0
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        exp_id = client.get_run(parent_run_id).info.experiment_id
        runs = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}' "
                                            f"and attributes.status = 'RUNNING'", max_results=5000)
        for r in runs:
            raw = r.data.tags.get("ftlab.optuna.trial")
            t = trials.get(int(raw)) if raw and raw.isdigit() else None
            if t is None or not t.user_attrs.get(INTERRUPTED):
                continue
            again = retried.get(t.number)
            client.set_tag(r.info.run_id, "ftlab.killed", "true")
            client.set_tag(r.info.run_id, "ftlab.retried_as", str(again) if again is not None else "")
            client.set_terminated(r.info.run_id, status="KILLED")
            marked += 1
            log.info("optuna: MLflow run %s (trial %d, killed) marked KILLED; retried as trial %s",
                     r.info.run_id, t.number, again)
    except Exception as exc:  # the server is down: the next start of the search marks them
        log.warning("could not mark killed attempts in MLflow (%s); the next run of this search will", exc)
    return marked
