"""Upload what a run kept in its folder while MLflow was unreachable (``ftlab sync RUN_DIR``).

Reads the run's ``mlflow_run.json`` (which run, which server) and ``tracking_journal.jsonl`` (every
call the run made), asks the server what the run already has and sends only the rest: missing
params, changed tags, metric points not in the metric's history (matched on timestamp, step and
value), artifact files absent or of another size, and the status and end time the run really ended
with. Syncing twice uploads nothing the second time.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ftlab.tracking import journal
from ftlab.tracking.redact import MASK, redact_text, redact_uri


class SyncError(RuntimeError):
    """Nothing could be uploaded (no MLflow run recorded, server unreachable, no credentials)."""


@dataclass
class SyncReport:
    run_id: str
    uri: str
    """Redacted."""
    params: int = 0
    tags: int = 0
    metrics: int = 0
    """Metric points uploaded."""
    artifacts: list[str] = field(default_factory=list)
    """Artifact paths uploaded."""
    status: Optional[str] = None
    """The status set now (None: already right, or the run never ended)."""
    notes: list[str] = field(default_factory=list)

    @property
    def uploaded(self) -> int:
        return self.params + self.tags + self.metrics + len(self.artifacts) + (self.status is not None)

    def lines(self) -> list[str]:
        head = f"MLflow run {self.run_id} at {self.uri}: "
        if not self.uploaded:
            return [head + "already complete, nothing uploaded", *self.notes]
        return [head + f"uploaded {self.params} params, {self.tags} tags, {self.metrics} metric points, "
                       f"{len(self.artifacts)} artifact files"
                + (f"; status set to {self.status}" if self.status else ""), *self.notes]


def _uri(recorded: str, given: Optional[str]) -> str:
    if given:
        return given
    if f"?{MASK}" in recorded or f"={MASK}" in recorded:
        raise SyncError(f"the recorded tracking URI {recorded} had a token, which ftlab does not "
                        f"store: pass --tracking-uri with it")
    if f"{MASK}@" in recorded:
        if not any(os.environ.get(v) for v in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_TOKEN")):
            raise SyncError(f"the recorded tracking URI {recorded} had credentials, which ftlab does "
                            f"not store: pass --tracking-uri with them or set "
                            f"MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD")
        return recorded.replace(f"{MASK}@", "")
    return recorded


def _point(ts: int, step: int, value: float) -> tuple:
    return (int(ts), int(step), "nan" if math.isnan(value) else float(value))


def _remote_files(client: Any, run_id: str, path: Optional[str] = None,
                  out: Optional[dict] = None) -> dict[str, int]:
    out = {} if out is None else out
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            _remote_files(client, run_id, f.path, out)
        else:
            out[f.path] = f.file_size
    return out


def _local_files(run_dir: Path, entries: list[dict]) -> dict[str, Path]:
    """Artifact path → local file, for every artifact the journal names (folders expanded the way
    :meth:`Tracker.log_artifact` uploads them)."""
    from ftlab.contain import OutsideFolder, inside, relative_key

    out: dict[str, Path] = {}
    for e in entries:
        what = f"{run_dir / journal.JOURNAL}: artifact entry {json.dumps(e)[:200]}"
        try:
            local = inside(run_dir, str(e["path"]), what)
            parent = relative_key(e.get("artifact_path"), what) or ""
            if local.is_dir():
                top = f"{parent}/{local.name}" if parent else local.name
                for f in sorted(p for p in local.rglob("*") if p.is_file()):
                    inside(run_dir, f, f"{what} (its file {f})")  # a symlink out of the folder
                    out[f"{top}/{f.relative_to(local).as_posix()}"] = f
            else:
                out[f"{parent}/{local.name}" if parent else local.name] = local
        except OutsideFolder as exc:
            raise SyncError(f"{exc}; nothing was uploaded") from None
    return out


def sync(run_dir: Path, uri: Optional[str] = None) -> SyncReport:
    """Upload to the run's MLflow run what it misses; see the module docstring."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    run_dir = Path(run_dir)
    rec_path = run_dir / "mlflow_run.json"
    if not rec_path.is_file():
        raise SyncError(f"{run_dir} has no mlflow_run.json: the run was never created in MLflow "
                        f"(tracking.enabled=false, or not an ftlab run folder)")
    rec = json.loads(rec_path.read_text(encoding="utf-8"))
    run_id, uri = rec["run_id"], _uri(rec.get("tracking_uri", ""), uri)
    if uri == rec.get("tracking_uri"):  # not given on the command line: the folder names the store
        from ftlab.contain import OutsideFolder, trusted_store
        from ftlab.tracking.mlflow_tracker import resolve_tracking_uri

        try:
            trusted_store(uri, resolve_tracking_uri(None), run_dir)
        except OutsideFolder as exc:
            raise SyncError(str(exc)) from None
    shown = redact_uri(uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = MlflowClient(tracking_uri=uri)
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        raise SyncError(f"cannot read MLflow run {run_id} at {shown} ({type(exc).__name__}: "
                        f"{redact_text(str(exc).splitlines()[0][:200] if str(exc) else '')}); "
                        f"nothing was uploaded: is the server back?") from None
    report = SyncReport(run_id, shown)
    entries = list(journal.read(run_dir))
    local_files = _local_files(run_dir, [e for e in entries if e["op"] == "artifact"])  # checked first
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    points: dict[str, dict[tuple, None]] = {}
    end: Optional[dict] = None
    for e in entries:
        if e["op"] == "params":
            params.update(e["params"])
        elif e["op"] == "tags":
            tags.update(e["tags"])
        elif e["op"] == "metrics":
            for k, v in e["metrics"].items():
                points.setdefault(k, {})[_point(e["ts"], e["step"], v)] = None
        elif e["op"] == "end":
            end = e

    have = run.data.params
    todo_p = [Param(k, v) for k, v in params.items() if k not in have]
    clash = sorted(k for k, v in params.items() if k in have and have[k] != v)
    if clash:
        report.notes.append(f"params already set to other values, left as they are: {', '.join(clash)}")
    for i in range(0, len(todo_p), 100):
        client.log_batch(run_id, params=todo_p[i:i + 100])
    report.params = len(todo_p)

    todo_t = [RunTag(k, v) for k, v in tags.items() if run.data.tags.get(k) != v]
    for i in range(0, len(todo_t), 100):
        client.log_batch(run_id, tags=todo_t[i:i + 100])
    report.tags = len(todo_t)

    todo_m = []
    for key, pts in points.items():
        known = ({_point(m.timestamp, m.step, m.value) for m in client.get_metric_history(run_id, key)}
                 if key in run.data.metrics else set())
        todo_m += [Metric(key, float(v), ts, step) for (ts, step, v) in pts if (ts, step, v) not in known]
    for i in range(0, len(todo_m), 1000):
        client.log_batch(run_id, metrics=todo_m[i:i + 1000])
    report.metrics = len(todo_m)

    remote = _remote_files(client, run_id)
    for rel, local in local_files.items():
        if not local.is_file():
            report.notes.append(f"artifact {rel}: {local} is gone, not uploaded")
            continue
        if remote.get(rel) != local.stat().st_size:
            parent = rel.rpartition("/")[0]
            client.log_artifact(run_id, str(local), artifact_path=parent or None)
            report.artifacts.append(rel)

    if end is None:
        report.notes.append(f"the run never ended (the process stopped first): the MLflow run keeps "
                            f"status {run.info.status}; finish it with resume={run_dir}")
    elif run.info.status != end["status"] or not run.info.end_time:
        client.set_terminated(run_id, status=end["status"], end_time=end["ts"])
        report.status = end["status"]
    return report
