"""Load and faults together: a 20-trial Optuna search on 2 worker processes while a fault injector
SIGKILLs 3 job processes at random points, kills and restarts a real ``mlflow server`` and finally
SIGKILLs the driver; ``ftlab`` is started again on the same study and must finish it truthfully.

Afterwards every trial slot is COMPLETE exactly once (interrupted attempts are FAIL with
``ftlab.interrupted`` and each has one retry), every finished trial's metrics are in MLflow (after
``ftlab sync`` of the folders the outage left behind), the parent's ranking lists all 20, and every
killed attempt that had opened its MLflow run is KILLED there with its trial and the trial that
retried it (the injector kills only such jobs; one the driver's kill cut short before its run has
none). The timeline is printed (docs/reliability.md keeps one).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT

HERE = Path(__file__).parent
N_TRIALS = 20
DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from sweep_helpers import register_fakes
from ftlab.plugins import get_plugins
register_fakes(get_plugins())
from ftlab.cli.run_cmd import main
sys.exit(main({args!r}))
"""


def _args(db: Path, sweep_dir: Path) -> list[str]:
    return ["-m", "+experiment=smoke", "backend=fake", "stages=[evaluate_base]", "data.max_eval_rows=12",
            "hydra/sweeper=ftlab_optuna",
            f"hydra.sweeper.n_trials={N_TRIALS}", "hydra.sweeper.n_jobs=2", "hydra.sweeper.sampler=random",
            "hydra.sweeper.seed=19", "hydra.sweeper.study_name=faults", f"hydra.sweeper.storage=sqlite:///{db}",
            "backend.junk_every=int(interval(0,9))", "data.max_train_rows=choice(4,8,16,32)",
            "hydra/launcher=ftlab_devices", "hydra.launcher.devices=[]", "hydra.launcher.n_jobs=2",
            "+hydra.callbacks.fakes._target_=sweep_helpers.RegisterFakes", f"hydra.sweep.dir={sweep_dir}"]


class Timeline:
    def __init__(self) -> None:
        self.t0, self.lines, self.lock = time.monotonic(), [], threading.Lock()

    def __call__(self, event: str) -> None:
        with self.lock:
            self.lines.append(f"{time.monotonic() - self.t0:6.1f}s  {event}")


def _jobs(root: Path) -> list[Path]:
    """Job run folders of every sweep under ``root`` (``<sweep>/<job number>``)."""
    return sorted(p.parent for p in root.glob("*/*/process.json"))


def _ended(folder: Path) -> bool:
    journal = folder / "tracking_journal.jsonl"
    return journal.is_file() and '"op": "end"' in journal.read_text(errors="replace")


def _pid(folder: Path) -> int | None:
    try:
        pid = int(json.loads((folder / "process.json").read_text())["pid"])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, KeyError):
        return None


class Injector(threading.Thread):
    """SIGKILLs a running job when the 2nd, 6th and 9th job have started (a random moment into it),
    kills the MLflow server once 4 ended while a job's MLflow run is going (restarted when that job
    has ended, at least 2 s later) and the driver once
    13 ended (the moment the 13th ends: between its run's end and its report to the study)."""

    def __init__(self, root: Path, server, driver: subprocess.Popen, mark: Timeline, seed: int = 19):
        super().__init__(daemon=True)
        self.root, self.server, self.driver, self.mark = root, server, driver, mark
        self.rng, self.stop = random.Random(seed), threading.Event()
        self.killed: list[str] = []
        self.server_restarted = self.driver_killed = False

    def _kill_a_job(self) -> None:
        time.sleep(self.rng.uniform(0.2, 1.2))
        # only a job whose MLflow run exists: the run must then end KILLED, which is what is checked
        # (a job killed before it opened its run is retried too, but leaves nothing in MLflow)
        live = [f for f in _jobs(self.root) if not _ended(f) and _pid(f) and (f / "mlflow_run.json").is_file()]
        if not live:
            return
        folder = self.rng.choice(live)
        pid = _pid(folder)
        if pid and not _ended(folder):
            os.kill(pid, signal.SIGKILL)
            self.killed.append(folder.name)
            self.mark(f"fault: SIGKILL job process {pid} running job {folder.name}")

    def _outlive(self, tracked: list[Path], cap_s: float = 90.0) -> None:
        """Keep the server down (at least 2 s) until the jobs that were logging have ended or died,
        so at least one ends with its run RUNNING in MLflow whatever the machine's speed."""
        time.sleep(2.0)
        deadline = time.monotonic() + cap_s
        while time.monotonic() < deadline and any(_pid(f) and not _ended(f) for f in tracked):
            time.sleep(0.1)
        self.mark(f"jobs {', '.join(f.name for f in tracked)} ended or died while the server was down")

    def run(self) -> None:
        kill_at, seen, over = [2, 6, 9], set(), set()
        while not self.stop.is_set() and self.driver.poll() is None:
            jobs = _jobs(self.root)
            for f in jobs:
                if f not in seen:
                    seen.add(f)
                    self.mark(f"job {f.name} starts")
                if f not in over and _ended(f):
                    over.add(f)
                    self.mark(f"job {f.name} ended")
            ended = len(over)
            if kill_at and len(jobs) >= kill_at[0]:
                before = len(self.killed)
                self._kill_a_job()
                if len(self.killed) > before:
                    kill_at.pop(0)
            # a job whose MLflow run exists and is still going: the outage must cut its logging short
            tracked = [f for f in jobs if f not in over and _pid(f) and (f / "mlflow_run.json").is_file()]
            if not self.server_restarted and ended >= 4 and tracked:
                self.server.kill()
                self.mark(f"fault: mlflow server SIGKILLed (process group), {ended} jobs ended")
                cut = [f for f in tracked if not _ended(f)]  # a job may have ended just before
                if cut:
                    self._outlive(cut)
                self.server.start()
                self.server_restarted = bool(cut)
                self.mark("mlflow server restarted on the same port and store"
                          + ("" if cut else " (no job was cut short: again at the next one)"))
            if not kill_at and self.server_restarted and not self.driver_killed and ended >= 13:
                self.driver.kill()
                self.driver_killed = True
                self.mark(f"fault: SIGKILL the ftlab driver ({ended} jobs ended)")
            time.sleep(0.1)


@pytest.mark.slow
def test_a_search_survives_killed_jobs_a_server_restart_and_a_killed_driver(tmp_path):
    mark, servers = Timeline(), []
    try:
        _run_and_check(tmp_path, mark, servers)
    finally:
        for server in servers:
            server.kill()
        print("\n".join(mark.lines))
        (tmp_path / "timeline.txt").write_text("\n".join(mark.lines) + "\n")


def _run_and_check(tmp_path: Path, mark: Timeline, servers: list) -> None:
    from mlflow.tracking import MlflowClient
    from mlflow_server import MlflowServer
    from optuna.trial import TrialState

    import optuna
    from ftlab.cli import main as cli

    server = MlflowServer(tmp_path / "server_store")
    servers.append(server)
    server.start()
    mark(f"mlflow server up at {server.url}")
    db, sweeps = tmp_path / "optuna.db", tmp_path / "multirun"
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "PYTHONPATH": str(HERE), "HOME": str(tmp_path / "home"),
           "FTLAB_HOME": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}

    def driver(name: str) -> subprocess.Popen:
        code = DRIVER.format(tests=str(HERE), args=_args(db, sweeps / name))
        log = (tmp_path / f"driver-{name}.log").open("w")
        return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT)

    try:
        first = driver("first")
        mark(f"ftlab driver started (pid {first.pid}): {N_TRIALS} trials, 2 worker processes")
        injector = Injector(sweeps, server, first, mark)
        injector.start()
        first.wait(timeout=400)
        injector.stop.set()
        injector.join(30)
        mark(f"driver ended with {first.returncode}; {len(_jobs(sweeps))} job folders")
        assert len(injector.killed) == 3 and injector.server_restarted and injector.driver_killed, \
            (tmp_path / "driver-first.log").read_text()[-3000:]
        assert first.returncode == -signal.SIGKILL

        os.environ["MLFLOW_TRACKING_URI"] = server.url  # ftlab sync in this process
        client, synced = MlflowClient(tracking_uri=server.url), []
        for folder in _jobs(sweeps):  # what the outage held back: ended in the folder, RUNNING in MLflow
            rec = folder / "mlflow_run.json"
            if rec.is_file() and _ended(folder) and \
                    client.get_run(json.loads(rec.read_text())["run_id"]).info.status == "RUNNING":
                assert cli(["sync", str(folder)]) == 0
                synced.append(folder.name)
        assert synced, "the server outage must have cut some job's logging short"
        mark(f"ftlab sync on the job folders the outage left incomplete: {', '.join(synced)}")

        again = driver("again")
        mark(f"ftlab started again on the same study (pid {again.pid})")
        assert again.wait(timeout=400) == 0, (tmp_path / "driver-again.log").read_text()[-3000:]
        mark("second driver finished: ranked and closed the parent run")
    finally:
        for p in ("first", "again"):
            proc = locals().get(p)
            if proc is not None and proc.poll() is None:
                proc.kill()

    study = optuna.load_study(study_name="faults", storage=f"sqlite:///{db}")
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert len(done) == N_TRIALS, [(t.number, t.state, t.user_attrs) for t in trials]
    assert all(t.user_attrs.get("ftlab.interrupted") for t in lost), "only interrupted attempts may fail"
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retry_of = [t.user_attrs["ftlab.retry_of"] for t in trials if "ftlab.retry_of" in t.user_attrs]
    assert sorted(retry_of) == sorted(t.number for t in lost), "each killed attempt retried exactly once"
    by_number = {t.number: t for t in trials}
    for t in trials:
        if "ftlab.retry_of" in t.user_attrs:
            assert t.params == by_number[t.user_attrs["ftlab.retry_of"]].params  # same parameters

    client = MlflowClient(tracking_uri=server.url)
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    (parent,) = [r for r in runs if r.data.tags.get("ftlab.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 1 + len(children)
    assert not [c for c in children if c.info.status == "RUNNING"], "no attempt left RUNNING"
    finished = {}
    for c in children:
        if c.info.status == "FINISHED":
            n = int(c.data.tags["ftlab.optuna.trial"])
            assert n not in finished, f"trial {n} finished twice"
            finished[n] = c
    assert sorted(finished) == sorted(t.number for t in done)
    for t in done:  # every finished trial's metrics are in MLflow, the outage's included
        assert finished[t.number].data.metrics["eval/base/eval/macro_f1"] == pytest.approx(t.value)
    killed = [c for c in children if c.info.status == "KILLED"]
    killed_trials = sorted(int(c.data.tags["ftlab.optuna.trial"]) for c in killed)
    assert len(killed) >= 3 and set(killed_trials) <= {t.number for t in lost}
    assert len(set(killed_trials)) == len(killed), "one KILLED run per interrupted attempt"
    for t in lost:  # an attempt killed before it opened its MLflow run (the driver's kill) has none
        if t.number not in killed_trials:
            assert not [c for c in children if c.data.tags.get("ftlab.optuna.trial") == str(t.number)]
    for c in killed:
        n = int(c.data.tags["ftlab.optuna.trial"])
        assert c.data.tags["ftlab.killed"] == "true" and by_number[n].user_attrs["ftlab.interrupted"]
        assert by_number[int(c.data.tags["ftlab.retried_as"])].user_attrs["ftlab.retry_of"] == n
    table = client.load_table(exp.experiment_id, "sweep/ranking.json", run_ids=[parent.info.run_id])
    ranked = table[table["status"] == "FINISHED"]
    assert sorted(ranked["job"]) == sorted(t.number for t in done) and not any(map(math.isnan, ranked["objective"]))
    assert sorted(table[table["status"] == "KILLED"]["job"]) == killed_trials
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/n_finished"] == N_TRIALS
    mark(f"checked: {len(done)} COMPLETE, {len(lost)} interrupted attempts KILLED and retried once, "
         f"ranking of {len(table)} rows ({len(ranked)} finished)")
