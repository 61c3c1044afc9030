"""Find a recorded run and read what it recorded: MLflow metrics, params, tags and its files.

A reference is an MLflow run id (32 hex digits), an experiment name (all its runs, newest first) or
a run folder (``outputs/<experiment>/<time>``: its MLflow run when the store has it, else the
folder alone, which also covers runs made with ``tracking.enabled=false``).
Files (``config.yaml``, ``manifest.json``, ``state.json``, charts …) come from the run folder named
by the tag ``ftlab.run_dir`` when it still exists on this machine and belongs to this run (its
``mlflow_run.json`` names the same run id); otherwise they are downloaded from the run's artifacts
into a temporary folder (:meth:`RecordedRun.download` also fetches folders such as the tuned
adapter). ``state.json`` is read from the run folder only; without it, ``ftlab predict`` finds the
tuned model from the run's ``ftlab.trained_model`` tag.

Used by ``ftlab report`` and ``ftlab predict``; imports no model library.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ftlab.tracking.mlflow_tracker import resolve_tracking_uri

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class RunNotFound(LookupError):
    """No run or experiment matches the reference (or the store cannot be read)."""


PROCESS_FILE = "process.json"
"""Written when a run starts: which process runs it (a hashed host, the pid and its start tick)."""


def _host_id() -> str:
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:16]  # the name itself is not kept


def _start_tick(pid: int) -> Optional[str]:
    try:  # field 22 of /proc/<pid>/stat: when the process started (tells a reused pid apart)
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def mark_process(run_dir: Path) -> None:
    """Record the process running ``run_dir`` (read by :func:`folder_status`)."""
    from ftlab.paths import atomic_write_text

    atomic_write_text(run_dir / PROCESS_FILE, json.dumps(
        {"host": _host_id(), "pid": os.getpid(), "start_tick": _start_tick(os.getpid())}))


def _alive(folder: Path) -> Optional[bool]:
    """Whether the process that ran ``folder`` still runs (None: another host, or no record)."""
    try:
        rec = json.loads((folder / PROCESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("host") != _host_id():
        return None
    pid = int(rec.get("pid") or 0)
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return rec.get("start_tick") in (None, _start_tick(pid))


def _stages_done(folder: Path) -> tuple[int, int]:
    """(stages the state records as done, stages configured) of a run folder."""
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
        state = json.loads((folder / "state.json").read_text()) if (folder / "state.json").is_file() else {}
    except (OSError, ValueError):
        return 0, 0
    stages = [str(s) for s in cfg.get("stages") or []]
    splits = list((cfg.get("eval") or {}).get("splits") or ["eval"])
    evaluated = set(state.get("evaluated") or [])
    done = {"evaluate_base": all(f"base/{s}" in evaluated for s in splits), "train": "trained" in state,
            "evaluate_tuned": all(f"tuned/{s}" in evaluated for s in splits), "compare": False}
    return sum(1 for s in stages if done.get(s)), len(stages)


def folder_status(folder: Path) -> tuple[str, str]:
    """(status, note) from what a run folder recorded: the end the run logged (its journal's exit
    marker), else FAILED with ``error.txt``, else RUNNING while its process lives, else INCOMPLETE
    (killed: SIGKILL, power loss) with the stages done and the command that finishes it."""
    from ftlab.tracking import journal

    ends = [e for e in journal.read(folder) if e.get("op") == "end"]
    if ends:
        return str(ends[-1].get("status") or "FINISHED"), ""
    if (folder / "error.txt").is_file():
        return "FAILED", ""
    if _alive(folder):
        return "RUNNING", ""
    done, total = _stages_done(folder)
    try:
        command = json.loads((folder / "manifest.json").read_text()).get("command") or ["ftlab"]
    except (OSError, ValueError):
        command = ["ftlab"]
    resume = " ".join([*(a for a in command if not a.startswith("resume=")), f"resume={folder}"])
    return "INCOMPLETE", (f"Run stopped without ending ({done} of {total} stages done; its process was "
                          f"killed or the machine stopped). Finish it with: {resume}")


def folder_result(folder: Path, metric: str) -> Optional[float]:
    """``metric``'s last value in a run folder whose run ended FINISHED (its journal says so), else None."""
    if not folder.is_dir() or folder_status(folder)[0] != "FINISHED":
        return None
    return _last_metrics(folder / "metrics.jsonl").get(metric)


@dataclass
class RecordedRun:
    """One MLflow run as ftlab recorded it."""

    run_id: str
    experiment_id: str
    experiment_name: str
    run_name: str
    status: str
    start_time: int
    """Milliseconds since the epoch."""
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    tracking_uri: str
    run_dir: Optional[Path]
    """The local run folder, when it exists here and belongs to this run."""
    client: Any = field(repr=False, default=None)
    status_note: str = ""
    """Why the status is what it is, when ftlab derived it (an incomplete run: how to finish it)."""
    _tmp: Optional[Path] = field(repr=False, default=None)
    _missing: set = field(repr=False, default_factory=set)

    # -- files -------------------------------------------------------------------------------------
    def file(self, rel: str) -> Optional[Path]:
        """A recorded file by its artifact path (``eval/base/eval/confusion_matrix.png``), or None."""
        if self.run_dir is not None and (self.run_dir / rel).is_file():
            return self.run_dir / rel
        if self.run_dir is not None or rel in self._missing or self.client is None:
            return None  # the run folder mirrors every artifact: absent there = not recorded
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"ftlab-run-{self.run_id[:8]}-"))
        dest = self._tmp / rel
        if dest.is_file():
            return dest
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        try:
            got = Path(self.client.download_artifacts(self.run_id, rel, str(self._tmp)))
        except Exception:
            self._missing.add(rel)
            return None
        return got if got.is_file() else None

    def download(self, rel: str) -> Optional[Path]:
        """A recorded file or folder (``model/adapter``) on this machine: from the run folder, else
        downloaded from the run's artifacts into a temporary folder; None if not recorded."""
        if self.run_dir is not None and (self.run_dir / rel).exists():
            return self.run_dir / rel
        if self.client is None:
            return None
        parent, _, name = rel.rstrip("/").rpartition("/")
        try:
            listed = {Path(a.path).name for a in self.client.list_artifacts(self.run_id, parent or None)}
        except Exception:
            return None
        if name not in listed:
            return None
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"ftlab-run-{self.run_id[:8]}-"))
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        got = Path(self.client.download_artifacts(self.run_id, rel, str(self._tmp)))
        return got if got.exists() else None

    def text(self, rel: str) -> Optional[str]:
        path = self.file(rel)
        return path.read_text(encoding="utf-8") if path is not None else None

    def json(self, rel: str) -> Any:
        raw = self.text(rel)
        return json.loads(raw) if raw is not None else None

    def state(self) -> dict:
        """The runner's ``state.json`` (stages done, the trained model reference); {} if absent."""
        if self.run_dir is None or not (self.run_dir / "state.json").is_file():
            return {}
        return json.loads((self.run_dir / "state.json").read_text(encoding="utf-8"))

    def cleanup(self) -> None:
        """Remove downloaded artifacts."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # -- metric helpers ----------------------------------------------------------------------------
    def metric(self, key: str) -> Optional[float]:
        return self.metrics.get(key)

    def stages(self, split: str) -> list[str]:
        """Evaluation stages recorded for ``split`` (``base``, ``tuned``), in run order (every task logs
        ``failed_rows``; classification runs from before it only ``macro_f1``)."""
        found = {k.split("/")[1] for k in self.metrics if k.startswith("eval/") and k.count("/") == 3
                 and (k.endswith(f"/{split}/macro_f1") or k.endswith(f"/{split}/failed_rows"))}
        return [s for s in ("base", "tuned") if s in found] + sorted(found - {"base", "tuned"})

    def splits(self) -> list[str]:
        found = {k.split("/")[2] for k in self.metrics if k.startswith("eval/") and k.count("/") == 3
                 and (k.endswith("/macro_f1") or k.endswith("/failed_rows"))}
        return [s for s in ("eval", "test") if s in found] + sorted(found - {"eval", "test"})

    @property
    def label(self) -> str:
        return self.run_name or self.run_id[:8]


def _run_dir(run_id: str, tags: dict[str, str]) -> Optional[Path]:
    raw = tags.get("ftlab.run_dir")
    if not raw:
        return None
    folder = Path(raw)
    rec = folder / "mlflow_run.json"
    if not rec.is_file():  # every run folder of an MLflow run has one from its first second
        return None
    try:
        if json.loads(rec.read_text()).get("run_id") != run_id:
            return None  # the tag names a folder that is not this run's: its files are not trusted
    except (OSError, ValueError):
        return None
    return folder


def _client(uri: Optional[str]):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=resolve_tracking_uri(uri))


def _wrap(run, exp_name: str, client, uri: str) -> RecordedRun:
    tags = dict(run.data.tags)
    run_dir, status, note = _run_dir(run.info.run_id, tags), run.info.status, ""
    if status == "RUNNING" and run_dir is not None:  # MLflow cannot tell a killed process from a live one
        status, note = folder_status(run_dir)
        if status != "RUNNING" and not note:
            note = f"MLflow still says RUNNING; its folder ended {status}: upload it with ftlab sync {run_dir}"
    return RecordedRun(
        run_id=run.info.run_id, experiment_id=run.info.experiment_id, experiment_name=exp_name,
        run_name=run.info.run_name or tags.get("mlflow.runName", ""), status=status,
        start_time=int(run.info.start_time or 0), metrics=dict(run.data.metrics),
        params=dict(run.data.params), tags=tags, tracking_uri=uri,
        run_dir=run_dir, client=client, status_note=note)


def _last_metrics(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # an append-only log may end in a line cut short by a crash
                continue
            out.update({k: float(v) for k, v in row.items() if k not in ("step", "time")})
    return out


def from_folder(folder: Path) -> RecordedRun:
    """A run read from its folder alone (metrics.jsonl, config.yaml, manifest.json)."""
    from omegaconf import OmegaConf

    from ftlab.tracking.mlflow_tracker import flatten

    cfg = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
    man_path = folder / "manifest.json"
    man = json.loads(man_path.read_text()) if man_path.is_file() else {}
    tags = {"ftlab.run_dir": str(folder), "mlflow.source.git.commit": man.get("git", {}).get("sha", ""),
            "ftlab.prompt_sha256": man.get("prompt_sha256", ""),
            "ftlab.label_set_sha256": man.get("label_set_sha256", "")}
    status, note = folder_status(folder)
    digest = hashlib.sha256(str(folder).encode()).hexdigest()
    return RecordedRun(run_id=f"local-{digest[:26]}",
                       experiment_id="", experiment_name=str(cfg.get("experiment", "")),
                       run_name=folder.name, status=status,
                       start_time=int((folder / "config.yaml").stat().st_mtime * 1000),
                       metrics=_last_metrics(folder / "metrics.jsonl"), params=flatten(cfg),
                       tags=tags, tracking_uri=f"(run folder {folder}; not in MLflow)", run_dir=folder,
                       status_note=note)


def find_runs(ref: str, uri: Optional[str] = None, max_runs: int = 50) -> list[RecordedRun]:
    """Runs named by ``ref``: one run for a run id or folder, else an experiment's runs, newest first."""
    uri = resolve_tracking_uri(uri)
    folder = Path(ref).expanduser()
    if not RUN_ID.match(ref) and (folder / "config.yaml").is_file():
        rec = folder / "mlflow_run.json"
        info = json.loads(rec.read_text()) if rec.is_file() else {}
        recorded = info.get("tracking_uri") or uri
        if not recorded.startswith(("sqlite:", "file:")):
            recorded = uri  # never wait on a recorded server that may be gone
        from ftlab.contain import OutsideFolder, trusted_store

        try:
            recorded = trusted_store(recorded, uri, folder)
        except OutsideFolder as exc:
            raise RunNotFound(str(exc)) from None
        if info.get("run_id"):
            try:
                return find_runs(info["run_id"], recorded, max_runs)
            except RunNotFound:
                pass
        return [from_folder(folder.resolve())]
    client = _client(uri)
    if RUN_ID.match(ref):
        try:
            run = client.get_run(ref)
        except Exception:
            run = None
        if run is not None:
            exp = client.get_experiment(run.info.experiment_id)
            return [_wrap(run, exp.name if exp else "", client, uri)]
    try:
        exp = client.get_experiment_by_name(ref)
    except Exception as exc:
        raise RunNotFound(f"cannot read the MLflow store at {uri}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
    if exp is None:
        from ftlab.plugins import did_you_mean

        names = [e.name for e in client.search_experiments()]
        kind = "run id or experiment" if RUN_ID.match(ref) else "experiment"
        raise RunNotFound(f"no {kind} {ref!r} in {uri}{did_you_mean(ref, names)} "
                          f"(experiments: {', '.join(sorted(names)) or 'none'})")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=max_runs)
    if not runs:
        raise RunNotFound(f"experiment {ref!r} in {uri} has no runs")
    return [_wrap(r, exp.name, client, uri) for r in runs]


def find_run(ref: str, uri: Optional[str] = None) -> RecordedRun:
    """One run: by run id, or the newest run of an experiment."""
    return find_runs(ref, uri, max_runs=1)[0]
