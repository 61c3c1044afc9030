"""A sweep's jobs, read back from MLflow: ranking, seed statistics, charts, the closing table.

Pure functions over ``Job`` rows except ``collect`` (MLflow) and the writers; no module-level imports
of mlflow, pandas or matplotlib.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ftlab.sweeps.context import SEED_KEYS, parse_overrides

HEADLINE = re.compile(r"^(eval/[^/]+/[^/]+/(lenient/)?(macro_f1|accuracy)"
                      r"|compare/[^/]+/(lenient_)?(macro_f1|accuracy)_delta"
                      r"|cv/(lenient/)?(macro_f1|accuracy)_mean)$")
"""Metrics that get mean/std/CI over seeds: strict and lenient macro-F1, accuracy, compare deltas and
their cross-validated means."""
CV_SUMMARY = re.compile(r"^cv/(lenient/)?[a-z0-9_]+_(mean|stderr)$")
"""A job's cross-validation summary keys (``cv/macro_f1_mean``, ``cv/lenient/macro_f1_stderr`` …)."""


@dataclass
class Job:
    run_id: str
    num: int
    status: str
    overrides: dict[str, str]
    metrics: dict[str, float]
    run_dir: str = ""

    def value(self, key: str) -> float:
        return self.metrics.get(key, float("nan"))

    @property
    def group(self) -> tuple[tuple[str, str], ...]:
        """The config without its seed: jobs in one group differ only by seed."""
        return tuple(sorted((k, v) for k, v in self.overrides.items() if k not in SEED_KEYS))


@dataclass
class Stat:
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    values: list[float] = field(default_factory=list)


def collect(client: Any, experiment_id: str, parent_id: str) -> list[Job]:
    """Every child run of ``parent_id``, ordered by job number."""
    runs = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'",
                              max_results=5000)
    jobs = []
    for r in runs:
        tags = r.data.tags
        status = "PRUNED" if tags.get("ftlab.pruned") == "true" else r.info.status  # MLflow: KILLED
        jobs.append(Job(r.info.run_id, int(tags.get("ftlab.sweep.job_num", -1)), status,
                        parse_overrides(json.loads(tags.get("ftlab.sweep.overrides", "[]"))),
                        dict(r.data.metrics), tags.get("ftlab.run_dir", "")))
    return sorted(jobs, key=lambda j: (j.num, j.run_id))


def swept_keys(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value differs between jobs, in first-seen order."""
    keys: dict[str, set] = {}
    for j in jobs:
        for k, v in j.overrides.items():
            keys.setdefault(k, set()).add(v)
    return [k for k, vs in keys.items() if len(vs) > 1 or any(k not in j.overrides for j in jobs)]


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Stat:
    """Mean, sample std and the Student-t confidence interval of the mean (n-1 dof)."""
    from scipy import stats

    vals = [float(v) for v in values if not math.isnan(v)]
    n = len(vals)
    if n == 0:
        return Stat(0, math.nan, math.nan, math.nan, math.nan)
    mean = sum(vals) / n
    if n == 1:
        return Stat(1, mean, math.nan, math.nan, math.nan, vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return Stat(n, mean, std, mean - half, mean + half, vals)


def seed_stats(jobs: Sequence[Job]) -> dict[tuple, dict[str, Stat]]:
    """Per config group with at least two finished seeds: {headline metric: Stat}."""
    groups: dict[tuple, list[Job]] = {}
    for j in jobs:
        if j.status == "FINISHED":
            groups.setdefault(j.group, []).append(j)
    out = {}
    for g, members in groups.items():
        if len(members) < 2:
            continue
        keys = sorted({k for j in members for k in j.metrics if HEADLINE.match(k)})
        out[g] = {k: t_interval([j.value(k) for j in members]) for k in keys}
    return out


def rank(jobs: Sequence[Job], key: str, maximize: bool) -> list[Job]:
    """Best first; failed jobs and jobs without the objective last."""
    def sort_key(j: Job):
        v = j.value(key)
        bad = j.status != "FINISHED" or math.isnan(v)
        return (bad, 0.0 if bad else (-v if maximize else v), j.num)

    return sorted(jobs, key=sort_key)


def ranking_rows(ranked: Sequence[Job], key: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for i, j in enumerate(ranked, 1):
        row: dict[str, Any] = {"rank": i, "job": j.num}
        row.update({k: j.overrides.get(k, "") for k in keys})
        row["objective"] = j.value(key)
        if key.endswith("_mean") and key[:-5] + "_stderr" in j.metrics:  # a CV mean: its standard error too
            row["stderr"] = j.value(key[:-5] + "_stderr")
        row.update({"status": j.status, "run_id": j.run_id})
        rows.append(row)
    return rows


def stat_rows(stats: dict[tuple, dict[str, Stat]]) -> list[dict[str, Any]]:
    rows = []
    for g, by_metric in stats.items():
        cfg = " ".join(f"{k}={v}" for k, v in g) or "(base config)"
        for metric, s in by_metric.items():
            rows.append({"config": cfg, "metric": metric, "n": s.n, "mean": s.mean, "std": s.std,
                         "ci95_low": s.ci_low, "ci95_high": s.ci_high})
    return rows


def print_table(title: str, rows: Sequence[dict[str, Any]], limit: int = 30) -> None:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(str(col), justify="right" if col in ("rank", "job", "n") else "left")
    for row in rows[:limit]:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    Console(width=160).print(table)


def objective_charts(jobs: Sequence[Job], key: str, keys: Sequence[str], out_dir: Path) -> list[Path]:
    """One PNG per swept key: objective against that key's values (categorical if not numeric)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    done = [j for j in jobs if j.status == "FINISHED" and not math.isnan(j.value(key))]
    for k in keys:
        raw = [j.overrides.get(k, "(default)") for j in done]
        try:
            xs: list[Any] = [float(x) for x in raw]
            ticks = None
        except ValueError:
            cats = sorted(set(raw))
            xs, ticks = [cats.index(x) for x in raw], cats
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.scatter(xs, [j.value(key) for j in done])
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), ticks, rotation=30, ha="right")
        ax.set_xlabel(k)
        ax.set_ylabel(key)
        ax.set_title(f"{key} vs {k}", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"objective_vs_{re.sub(r'[^A-Za-z0-9_.-]+', '_', k)}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
