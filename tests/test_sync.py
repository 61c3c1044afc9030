"""Tracking outage: a real MLflow server dies mid-run, the run goes on, ``ftlab sync`` catches up.

The server is ``mlflow server`` in its own process group, SIGKILLed from the backend's ``train``
(after the base evaluation was logged) and started again on the same port and store.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
from fake_backend import FakeBackend, FakeConfig

from ftlab import hookimpl

KILL: list = []  # callbacks run when training starts


@dataclass
class OutageConfig(FakeConfig):
    """The fake backend; training first runs the callbacks in KILL."""

    name: str = "fake_outage"
    """Backend name."""


class OutageBackend(FakeBackend):
    def train(self, job):
        while KILL:
            KILL.pop(0)()
        return super().train(job)


class OutagePlugin:
    @hookimpl
    def ftlab_register_backends(self, register):
        register("fake_outage", lambda cfg, ctx: OutageBackend(cfg, ctx), OutageConfig)


@pytest.fixture
def outage(fake_backend, tmp_path, monkeypatch):
    from mlflow_server import MlflowServer

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail in seconds, not minutes
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    name = fake_backend.register(OutagePlugin(), name="outage_plugin")
    server = MlflowServer(tmp_path / "server_store")
    yield fake_backend, server
    KILL.clear()
    server.kill()
    fake_backend.unregister(name)


def _journal(run_dir):
    from ftlab.tracking import journal

    return list(journal.read(run_dir))


def test_server_dies_mid_run_run_finishes_and_sync_uploads_the_rest_once(outage, tmp_path, caplog,
                                                                         capsys):
    from mlflow.tracking import MlflowClient

    from ftlab.cli import main as cli
    from ftlab.config.compose import compose
    from ftlab.runner import run
    from ftlab.tracking.mlflow_tracker import TrackingError
    from ftlab.tracking.sync import _remote_files

    plugins, server = outage
    t0, timeline = time.monotonic(), []

    def mark(event: str) -> None:
        timeline.append(f"{time.monotonic() - t0:6.1f}s  {event}")

    server.start()
    mark(f"mlflow server up at {server.url} (pgid {server.proc.pid})")
    KILL.append(lambda: (server.kill(), mark("stage train starts: server process group SIGKILLed")))
    overrides = ["+experiment=smoke", "backend=fake_outage", f"tracking.uri={server.url}"]
    run_dir = tmp_path / "run"
    with caplog.at_level("WARNING", logger="ftlab"):
        objective = run(compose(overrides, plugins), run_dir=run_dir, plugins=plugins)
    printed = capsys.readouterr().out
    warned = [r.getMessage() for r in caplog.records if "ftlab sync" in r.getMessage()]
    mark(f"run returned normally (objective {objective:.3f}); warnings naming ftlab sync: {len(warned)}")
    for w in warned:
        mark(f"  warning: {w}")
    for line in printed.splitlines()[-2:]:
        mark(f"  printed: {line}")
    assert len(warned) == 1 and warned[0].endswith(f"upload them with: ftlab sync {run_dir}")
    assert f"incomplete: ftlab sync {run_dir}" in printed
    for f in ("eval/tuned/eval/predictions.jsonl", "compare/eval/per_class_delta.csv",
              "train/fake_model.json", "train/history.json", "state.json", "tracking_journal.jsonl"):
        assert (run_dir / f).exists(), f
    entries = _journal(run_dir)
    assert entries[-1]["op"] == "end" and entries[-1]["status"] == "FINISHED"

    assert cli(["sync", str(run_dir)]) == 2  # still down: says so, uploads nothing
    err = capsys.readouterr().err
    assert "nothing was uploaded: is the server back?" in err
    mark(f"ftlab sync while down: exit 2: {err.strip()}")

    server.start()
    mark("server restarted on the same port and store")
    client = MlflowClient(tracking_uri=server.url)
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    before = client.get_run(run_id)
    assert before.info.status == "RUNNING"
    assert "eval/base/eval/macro_f1" in before.data.metrics  # logged before the outage
    assert "eval/tuned/eval/macro_f1" not in before.data.metrics
    mark(f"MLflow run before sync: status {before.info.status}, {len(before.data.metrics)} metrics")

    assert cli(["sync", str(run_dir)]) == 0
    out = capsys.readouterr().out.strip()
    mark(f"ftlab sync #1: {out}")
    after = client.get_run(run_id)
    assert after.info.status == "FINISHED" and after.info.end_time == entries[-1]["ts"]
    last: dict[str, float] = {}
    for e in entries:
        if e["op"] == "metrics":
            last.update(e["metrics"])
    assert set(after.data.metrics) == set(last)
    for k, v in last.items():
        assert after.data.metrics[k] == pytest.approx(v), k
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [1, 2, 3]
    params = {k: v for e in entries if e["op"] == "params" for k, v in e["params"].items()}
    assert after.data.params == params
    remote = _remote_files(client, run_id)
    for rel in ("eval/tuned/eval/predictions.jsonl", "eval/base/eval/predictions.jsonl",
                "compare/eval/per_class_delta.csv", "train/history.json", "state.json",
                "config.yaml", "manifest.json"):
        assert remote.get(rel) == (run_dir / rel).stat().st_size, rel
    assert remote["model/fake_model.json"] == (run_dir / "train/fake_model.json").stat().st_size
    assert json.loads(after.data.tags["ftlab.trained_model"])["kind"] == "tuned"

    def points():
        return {k: len(client.get_metric_history(run_id, k)) for k in
                ("train/loss", "eval/base/eval/macro_f1", "eval/tuned/eval/macro_f1",
                 "compare/eval/macro_f1_delta")}

    counts = points()
    assert counts == {"train/loss": 3, "eval/base/eval/macro_f1": 1, "eval/tuned/eval/macro_f1": 1,
                      "compare/eval/macro_f1_delta": 1}
    assert cli(["sync", str(run_dir)]) == 0
    out = capsys.readouterr().out.strip()
    mark(f"ftlab sync #2: {out}")
    assert "already complete, nothing uploaded" in out
    assert points() == counts and _remote_files(client, run_id) == remote

    # tracking.strict=true: the same outage finishes the work, then fails the command
    KILL.append(lambda: (server.kill(), mark("strict run: server SIGKILLed at train")))
    strict_dir = tmp_path / "strict"
    with pytest.raises(TrackingError, match="tracking.strict=true and MLflow tracking failed"):
        run(compose([*overrides, "tracking.strict=true"], plugins), run_dir=strict_dir,
            plugins=plugins)
    mark("strict run: finished the work, then raised TrackingError (the CLI exits 2)")
    assert (strict_dir / "compare/eval/per_class_delta.csv").is_file()
    assert _journal(strict_dir)[-1]["status"] == "FINISHED"
    print("\n--- outage timeline ---\n" + "\n".join(timeline))


def test_sync_needs_a_tracked_run_folder(tmp_path, capsys):
    from ftlab.cli import main as cli

    assert cli(["sync", str(tmp_path)]) == 2
    assert "has no mlflow_run.json" in capsys.readouterr().err


@pytest.mark.parametrize("recorded,env,message", [
    ("http://***@h:5000", {}, "had credentials"),
    ("http://h:5000/?token=***", {}, "had a token"),
])
def test_sync_never_guesses_credentials(tmp_path, monkeypatch, recorded, env, message):
    from ftlab.tracking.sync import SyncError, sync

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    (tmp_path / "mlflow_run.json").write_text(json.dumps({"run_id": "a" * 32, "tracking_uri": recorded}))
    with pytest.raises(SyncError, match=message):
        sync(tmp_path)
