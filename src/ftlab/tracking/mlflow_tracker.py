"""MLflow tracking with a local mirror: every metric and artifact is also written to the run folder.

Default store: ``sqlite:///<project root>/mlflow.db`` with artifacts under ``<root>/mlartifacts``.
A set ``MLFLOW_TRACKING_URI`` (or ``tracking.uri``) wins. The server is checked once at start
(a dead server fails fast, before any work); a logging call that fails later is reported once and
the run goes on: the run folder keeps everything (``tracking_journal.jsonl`` records every call,
the artifacts are files beside it), one warning names the command that uploads it later
(``ftlab sync RUN_DIR``, :mod:`ftlab.tracking.sync`) and :attr:`Tracker.broken` tells the runner.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from ftlab.paths import atomic_write_text, project_root
from ftlab.tracking import journal
from ftlab.tracking.redact import redact_text, redact_uri, redact_value

log = logging.getLogger("ftlab")


class TrackingError(RuntimeError):
    pass


def default_tracking_uri() -> str:
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def resolve_tracking_uri(configured: Optional[str]) -> str:
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def flatten(d: Any, prefix: str = "") -> dict[str, str]:
    """``{"train": {"lora": {"r": 16}}}`` → ``{"train.lora.r": "16"}`` (lists as JSON)."""
    out: dict[str, str] = {}
    if isinstance(d, Mapping):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = json.dumps(d) if isinstance(d, (list, tuple)) else str(d)
    return out


def start_wait_s() -> float:
    """How long a new run waits for an unreachable tracking server before failing: ``0`` for a single
    run (a dead server fails fast, before any work), 120 s for a job of a sweep (a server restart
    must not cost a trial), ``$FTLAB_TRACKING_WAIT_S`` if set."""
    if os.environ.get("FTLAB_TRACKING_WAIT_S"):
        return float(os.environ["FTLAB_TRACKING_WAIT_S"])
    from ftlab.sweeps.context import in_multirun

    return 120.0 if in_multirun() else 0.0


def _timed(method):
    """Add the method's wall time to ``self.seconds`` (the tracking overhead a run reports)."""
    @functools.wraps(method)
    def timed(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
    return timed


class Tracker:
    """One MLflow run, mirrored to ``run_dir``. Use as a context manager."""

    def __init__(self, run_dir: Path, enabled: bool, uri: Optional[str], experiment: str,
                 run_name: Optional[str]) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.uri = resolve_tracking_uri(uri) if enabled else ""
        self.experiment = experiment
        self.run_name = run_name
        self.run_id: Optional[str] = None
        self._client = None
        self.reopened = False
        """``start`` continued the MLflow run recorded in the run folder (a resume on the same store)."""
        self._broken = False
        self._metrics_file = run_dir / "metrics.jsonl"
        self._tables: list[dict[str, str]] = []
        """The tables logged so far (the ``mlflow.loggedArtifacts`` tag lists them all)."""
        self.last_metrics: dict[str, float] = {}
        """Latest value of each metric logged by this process (a sweep's objective is read here)."""
        self.seconds = 0.0
        """Wall seconds spent in this tracker's public methods: MLflow calls (its import and the run's
        creation included) and the run folder's mirror of them. Reported as ``time/tracking_s``."""

    # -- lifecycle ---------------------------------------------------------------------------------
    @_timed
    def start(self, tags: Mapping[str, str], resume: bool = False) -> None:
        """Create the MLflow run (or reopen the one recorded in the run folder when resuming)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.enabled:
            return
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        recorded = self.run_dir / "mlflow_run.json"
        if resume and recorded.exists():
            info = json.loads(recorded.read_text())
            if info.get("tracking_uri") in (self.uri, redact_uri(self.uri)):
                try:
                    client.update_run(info["run_id"], status="RUNNING")
                    self._client, self.run_id, self.reopened = client, info["run_id"], True
                    return
                except Exception as exc:
                    raise TrackingError(f"cannot reopen MLflow run {info['run_id']} at "
                                        f"{redact_uri(self.uri)}: {redact_text(str(exc))}") from None
        deadline, warned = time.monotonic() + start_wait_s(), False
        while True:
            try:
                self._create(client, tags)
                return
            except TrackingError:
                if time.monotonic() >= deadline:
                    raise
                if not warned:
                    log.warning("MLflow at %s is not reachable; this sweep job waits for it (up to %.0f s)",
                                redact_uri(self.uri), deadline - time.monotonic())
                    warned = True
                time.sleep(2.0)

    def _create(self, client, tags: Mapping[str, str]) -> None:
        try:
            exp = client.get_experiment_by_name(self.experiment)
            if exp is None:
                location = None
                if self.uri.startswith("sqlite:///"):  # artifacts beside the db, not in the cwd
                    location = (Path(self.uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
                exp_id = client.create_experiment(self.experiment, artifact_location=location)
            else:
                exp_id = exp.experiment_id
            run = client.create_run(exp_id, run_name=redact_text(self.run_name) if self.run_name else None,
                                    tags={k: redact_text(str(v)) for k, v in tags.items()})
        except Exception as exc:
            raise TrackingError(f"MLflow tracking server at {redact_uri(self.uri)} is not usable: "
                                f"{type(exc).__name__}: {redact_text(str(exc).splitlines()[0][:300])}. "
                                f"Nothing was run. "
                                f"Start the server, unset MLFLOW_TRACKING_URI to use the local sqlite "
                                f"store, or pass tracking.enabled=false.") from None
        self._client, self.run_id = client, run.info.run_id
        atomic_write_text(self.run_dir / "mlflow_run.json", json.dumps(
            {"run_id": self.run_id, "experiment_id": exp_id, "tracking_uri": redact_uri(self.uri)},
            indent=1))

    @_timed
    def end(self, status: str = "FINISHED", error: Optional[str] = None) -> None:
        error = redact_text(error) if error else error
        if error:
            atomic_write_text(self.run_dir / "error.txt", error)
            journal.append(self.run_dir, "tags", tags={"error": error[:5000]})
        ts = int(time.time() * 1000)
        journal.append(self.run_dir, "end", status=status, ts=ts)
        if self._client is None:
            return
        if error:
            self._call("set_tag", self.run_id, "error", error[:5000])
        self._call("set_terminated", self.run_id, status=status, end_time=ts)

    @property
    def broken(self) -> bool:
        """An MLflow call failed: the MLflow run misses what came after (``ftlab sync`` adds it)."""
        return self._broken

    # -- logging -----------------------------------------------------------------------------------
    def _call(self, method: str, *args, **kwargs) -> None:
        if self._client is None or self._broken:
            return
        try:
            getattr(self._client, method)(*args, **kwargs)
        except Exception as exc:  # keep the run going; the run folder has everything
            self._broken = True
            log.warning("MLflow tracking at %s failed (%s: %s). The run goes on and keeps every "
                        "param, metric and artifact in %s; when the server is back, upload them "
                        "with: ftlab sync %s", redact_uri(self.uri), type(exc).__name__,
                        redact_text(str(exc).splitlines()[0][:200] if str(exc) else ""),
                        self.run_dir, self.run_dir)

    @_timed
    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        values = {k: str(redact_value(k, v))[:6000] for k, v in params.items()}
        journal.append(self.run_dir, "params", params=values)
        items = [Param(k, v) for k, v in values.items()]
        for i in range(0, len(items), 100):
            self._call("log_batch", self.run_id, params=items[i:i + 100])

    @_timed
    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        self.last_metrics.update(clean)
        with self._metrics_file.open("a") as fh:
            fh.write(json.dumps({"step": step, "time": time.time(), **clean}) + "\n")
        ts = int(time.time() * 1000)
        journal.append(self.run_dir, "metrics", ts=ts, step=step or 0, metrics=clean)
        if self._client is None:
            return
        from mlflow.entities import Metric

        items = [Metric(k, v, ts, step or 0) for k, v in clean.items()]
        for i in range(0, len(items), 1000):
            self._call("log_batch", self.run_id, metrics=items[i:i + 1000])

    @_timed
    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._set_tags(tags)

    def _set_tags(self, tags: Mapping[str, str]) -> None:
        tags = {k: redact_text(str(v)) for k, v in tags.items()}
        with (self.run_dir / "tags.json").open("a") as fh:
            fh.write(json.dumps(tags) + "\n")
        journal.append(self.run_dir, "tags", tags=tags)
        if self._client is None:
            return
        from mlflow.entities import RunTag

        self._call("log_batch", self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    @_timed
    def log_artifact(self, path: Path, artifact_path: Optional[str] = None, table: bool = False) -> None:
        """Upload a file or folder. Files outside the run folder are first copied into it. ``table``:
        a JSON file in ``mlflow.log_table``'s layout, tagged as a table (``mlflow.loggedArtifacts``, as
        ``log_table`` does) so the MLflow UI shows it as one."""
        path = Path(path)
        try:
            local = path.resolve().relative_to(self.run_dir.resolve())
        except ValueError:
            dest = self.run_dir / (artifact_path or "") / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, dest, dirs_exist_ok=True)
            else:
                shutil.copy2(path, dest)
            local = dest.relative_to(self.run_dir)
        journal.append(self.run_dir, "artifact", path=local.as_posix(), artifact_path=artifact_path)
        if path.is_dir():
            self._call("log_artifacts", self.run_id, str(path),
                       artifact_path=f"{artifact_path}/{path.name}" if artifact_path else path.name)
        else:
            self._call("log_artifact", self.run_id, str(path), artifact_path=artifact_path)
        if table:
            entry = {"path": f"{artifact_path}/{path.name}" if artifact_path else path.name, "type": "table"}
            if entry not in self._tables:
                self._tables.append(entry)
            self._set_tags({"mlflow.loggedArtifacts": json.dumps(self._tables)})
