"""The sweep's parent MLflow run: created before any job starts, summarised after the last one."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from ftlab.paths import atomic_write_text
from ftlab.sweeps import summary as sm
from ftlab.sweeps.context import SWEEP_ENV, SWEEP_FILE, objective_key, uri_id
from ftlab.tracking.redact import redact_uri

log = logging.getLogger("ftlab")
_ACTIVE: Optional["SweepParent"] = None
"""The driver's open parent run, so a sweep that dies half-way still gets its ranking (driver only)."""


def finish_active(failed: bool) -> None:
    """Summarise and close the open parent run, if any (the sweeper calls this when a job fails)."""
    if _ACTIVE is not None:
        _ACTIVE.finish(failed=failed)


class SweepParent:
    """One per multirun, in the driver process. Jobs find it through ``ftlab_sweep.json``."""

    def __init__(self, config: DictConfig) -> None:
        from ftlab.tracking.mlflow_tracker import Tracker, resolve_tracking_uri

        self.config = config
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.key = objective_key(config)
        self.maximize = str(config.sweep.direction) in ("maximize", "Direction.maximize")
        t = config.tracking
        self.uri = resolve_tracking_uri(t.uri)
        experiment = t.experiment_name or config.experiment
        self.tracker = Tracker(self.sweep_dir, bool(t.enabled), t.uri, experiment,
                               f"sweep-{config.experiment}-{self.sweep_dir.name}")
        self.finished = False

    def start(self, reuse_run_id: Optional[str] = None) -> str:
        """Create (or with ``reuse_run_id``, reopen) the parent run and publish it to the jobs."""
        if not self.tracker.enabled:
            return ""
        hc = self.config.hydra
        sweeper = str(OmegaConf.select(hc, "sweeper._target_", default="")).rsplit(".", 1)[-1]
        launcher = str(OmegaConf.select(hc, "launcher._target_", default="")).rsplit(".", 1)[-1]
        tags = {"ftlab.sweep": "parent", "ftlab.sweep.dir": str(self.sweep_dir),
                "ftlab.sweep.objective": self.key,
                "ftlab.sweep.direction": "maximize" if self.maximize else "minimize",
                "ftlab.sweep.sweeper": sweeper, "ftlab.sweep.launcher": launcher}
        if reuse_run_id:
            atomic_write_text(self.sweep_dir / "mlflow_run.json", json.dumps(
                {"run_id": reuse_run_id, "tracking_uri": redact_uri(self.uri)}))
        warning = selection_warning(self.config, self.key, self._declared_keys())
        if warning:
            log.warning("%s", warning)
            print(f"warning: {warning}")
            tags["ftlab.sweep.selection_warning"] = warning
        self.tracker.start(tags, resume=bool(reuse_run_id))
        self.tracker.set_tags({**tags, "ftlab.sweep.last_dir": str(self.sweep_dir)})
        if not reuse_run_id:
            overrides = list(hc.overrides.task)
            self.tracker.log_params({"sweep.overrides": " ".join(overrides), "sweep.objective": self.key,
                                     "sweep.direction": tags["ftlab.sweep.direction"],
                                     "sweep.sweeper": sweeper, "sweep.launcher": launcher})
            params = OmegaConf.select(hc, "sweeper.params", default=None)
            if params:
                self.tracker.log_params({f"sweep.space.{k}": str(v) for k, v in params.items()})
        info = {"run_id": self.tracker.run_id, "tracking_uri_id": uri_id(self.uri),
                "sweep_dir": str(self.sweep_dir)}
        if redact_uri(self.uri) == self.uri:  # no credentials in it: jobs in stale workers follow it
            info["tracking_uri"] = self.uri
        atomic_write_text(self.sweep_dir / SWEEP_FILE, json.dumps(info, indent=1))
        os.environ[SWEEP_ENV] = json.dumps(info)
        global _ACTIVE
        _ACTIVE = self
        log.info("sweep parent MLflow run %s", self.tracker.run_id)
        return self.tracker.run_id or ""

    def finish(self, failed: bool = False) -> None:
        """Rank the children, seed statistics, best config, charts; print the ranking."""
        global _ACTIVE
        if _ACTIVE is self:
            _ACTIVE = None
        if self.finished:
            return
        self.finished = True
        os.environ.pop(SWEEP_ENV, None)
        client = self.tracker._client
        if client is None:
            return
        exp_id = client.get_run(self.tracker.run_id).info.experiment_id
        jobs = sm.collect(client, exp_id, self.tracker.run_id)
        keys = sm.swept_keys(jobs)
        keys += [k for k in self._declared_keys() if k not in keys and any(k in j.overrides for j in jobs)]
        out = self.sweep_dir / "summary"
        out.mkdir(parents=True, exist_ok=True)
        stats = sm.seed_stats(jobs)
        if stats:
            ranked_groups = sorted(stats, key=lambda g: _sort_value(stats[g].get(self.key), self.maximize))
            best_group = ranked_groups[0]
            best = next(j for j in sm.rank(jobs, self.key, self.maximize) if j.group == best_group)
            for metric, s in stats[best_group].items():
                self.tracker.log_metrics({f"seeds/{metric}/{f}": getattr(s, f)
                                          for f in ("mean", "std", "ci_low", "ci_high")
                                          if not math.isnan(getattr(s, f))})
            self.tracker.log_metrics({"seeds/n": float(max(s.n for s in stats[best_group].values()))})
            self._table(sm.stat_rows({g: stats[g] for g in ranked_groups}), out, "seed_stats")
        ranked = sm.rank(jobs, self.key, self.maximize)
        rows = sm.ranking_rows(ranked, self.key, keys)
        self._table(rows, out, "ranking")
        finished = [j for j in ranked if j.status == "FINISHED" and not math.isnan(j.value(self.key))]
        self.tracker.log_metrics({"sweep/n_jobs": float(len(jobs)), "sweep/n_finished": float(len(finished))})
        if not stats and finished:
            best = finished[0]
        if finished:
            self.tracker.log_metrics({"sweep/best_objective": best.value(self.key)})
            # the best job's cross-validation summary, so the parent shows mean ± s.e. beside the objective
            self.tracker.log_metrics({f"best/{k}": v for k, v in best.metrics.items() if sm.CV_SUMMARY.match(k)})
            self.tracker.set_tags({"ftlab.sweep.best_run_id": best.run_id,
                                   "ftlab.sweep.best_overrides": json.dumps(best.overrides)})
            self._best_config(client, best, out)
        for png in sm.objective_charts(jobs, self.key, keys, out):
            self.tracker.log_artifact(png, "sweep")
        self.tracker.end("FINISHED" if finished and not failed else "FAILED")
        sm.print_table(f"sweep {self.sweep_dir.name}: {self.key} "
                       f"({'max' if self.maximize else 'min'}imize), {len(finished)}/{len(jobs)} jobs", rows)
        if stats:
            sm.print_table("seed statistics (mean, std, 95% t-interval)", sm.stat_rows(stats))
        print(f"sweep parent MLflow run: {self.tracker.run_id}")

    def _declared_keys(self) -> list[str]:
        """Keys the command line sweeps (``k=a,b``, ``k=choice(..)``) or the search space names."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        hc = self.config.hydra
        parsed = OverridesParser.create().parse_overrides(list(hc.overrides.task))
        keys = [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]
        return keys + list(OmegaConf.select(hc, "sweeper.params", default=None) or {})

    def _table(self, rows: list[dict[str, Any]], out: Path, name: str) -> None:
        import pandas as pd

        if not rows:
            return
        df = pd.DataFrame(rows)
        df.to_csv(out / f"{name}.csv", index=False)
        self.tracker.log_artifact(out / f"{name}.csv", "sweep")
        self.tracker._call("log_table", self.tracker.run_id, data=df, artifact_file=f"sweep/{name}.json")

    def _best_config(self, client: Any, best: sm.Job, out: Path) -> None:
        src = Path(best.run_dir) / "config.yaml" if best.run_dir else None
        dest = out / "best_config.yaml"
        if src is not None and src.is_file():
            atomic_write_text(dest, src.read_text())
        else:
            try:
                atomic_write_text(dest, Path(client.download_artifacts(best.run_id, "config.yaml",
                                                                       str(out))).read_text())
            except Exception as exc:  # the ranking is still useful without it
                log.warning("best config of run %s not available: %s", best.run_id, exc)
                return
        self.tracker.log_artifact(dest, "sweep")


def selection_warning(config: DictConfig, key: str, declared: list[str]) -> str:
    """Why this sweep's choice is optimistic, or "": its objective is a metric of a split the runs also
    report as their result, and it chooses between configs (a sweep over seeds alone chooses nothing)."""
    from ftlab.sweeps.context import SEED_KEYS

    parts = key.split("/")
    split = parts[2] if parts[0] == "eval" and len(parts) > 3 else parts[1] if parts[0] == "compare" else ""
    chooses = [k for k in declared if k not in SEED_KEYS and k != "seeds"]
    if not split or split not in list(config.eval.splits) or not chooses:
        return ""
    return (f"sweep objective {key} is a metric of the {split!r} split, which every run also reports as its "
            f"result: the best job's {split} numbers are selected on themselves and optimistic. Select on "
            f"the training split instead: eval.cv.folds=5 and sweep.objective=cv/macro_f1_mean "
            f"(docs/sweeps.md, \"Nested selection\")")


def _sort_value(stat: Optional[sm.Stat], maximize: bool) -> float:
    if stat is None or math.isnan(stat.mean):
        return math.inf
    return -stat.mean if maximize else stat.mean
