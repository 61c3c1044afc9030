"""Each launcher runs a sweep to completion with its MLflow runs nested under the sweep's parent.

Jobs run in other processes, which register the fake backends through a test Hydra callback
(``sweep_helpers.RegisterFakes``); they find the parent run through the sweep folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_sweeps import parent_and_children, ftlab_main, sweep_plugins  # noqa: F401 (fixture)

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def mpl_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mpl_shared")


@pytest.fixture
def workers_env(sweep_plugins, monkeypatch, tmp_path, mpl_cache):  # noqa: F811
    monkeypatch.setenv("MPLCONFIGDIR", str(mpl_cache))  # one font cache for all worker processes
    monkeypatch.setenv("PYTHONPATH", str(HERE))  # worker processes import sweep_helpers from here
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    return sweep_plugins


def run_grid(tmp_path, *launcher_args: str, grid: str = "backend.junk_every=0,2"):
    t0 = time.perf_counter()
    rc = ftlab_main("-m", "+experiment=smoke", "backend=fake", grid, "stages=[evaluate_base]",
                    "data.max_eval_rows=8",
                    "+hydra.callbacks.fakes._target_=sweep_helpers.RegisterFakes",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}", *launcher_args)
    wall = time.perf_counter() - t0
    assert rc == 0
    client, parent, children = parent_and_children()
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/n_finished"] == len(children)
    print(f"wall {wall:.1f}s for {len(children)} jobs: {' '.join(launcher_args)}")
    return client, parent, children


def test_joblib_splits_the_cores_between_concurrent_jobs(workers_env, tmp_path):
    _, _, children = run_grid(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert len(children) == 2
    cores = len(os.sched_getaffinity(0))
    assert {c.data.tags["ftlab.threads"] for c in children} == {str(max(1, cores // 2))}
    assert {c.data.tags["ftlab.env.OMP_NUM_THREADS"] for c in children} == {str(max(1, cores // 2))}
    assert len({c.data.tags["ftlab.run_dir"] for c in children}) == 2


def test_device_launcher_pins_one_job_per_device_and_queues_the_rest(workers_env, tmp_path):
    _, _, children = run_grid(tmp_path, "hydra/launcher=ftlab_devices", "hydra.launcher.devices=[0,1]",
                              grid="backend.junk_every=0,2,3,4")
    assert len(children) == 4
    by_device: dict[str, list] = {}
    for c in children:
        by_device.setdefault(c.data.tags["ftlab.env.CUDA_VISIBLE_DEVICES"], []).append(c.info)
    assert sorted(by_device) == ["0", "1"]
    half = str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert {c.data.tags["ftlab.threads"] for c in children} == {half}
    for runs in by_device.values():  # never two jobs on one device at the same time
        runs.sort(key=lambda r: r.start_time)
        for a, b in zip(runs, runs[1:]):
            assert a.end_time <= b.start_time


def test_device_launcher_without_devices_runs_local_processes(workers_env, tmp_path):
    _, _, children = run_grid(tmp_path, "hydra/launcher=ftlab_devices", "hydra.launcher.devices=[]",
                              "hydra.launcher.n_jobs=2")
    assert len(children) == 2
    assert {c.data.tags["ftlab.env.CUDA_VISIBLE_DEVICES"] for c in children} == {""}


def test_ray_runs_jobs_as_tasks_on_a_local_ray(workers_env, tmp_path):
    _, _, children = run_grid(tmp_path, "hydra/launcher=ftlab_ray", "+hydra.launcher.init.num_cpus=2",
                              "hydra.launcher.shutdown=true")
    assert len(children) == 2


def test_submitit_local_executor(workers_env, tmp_path):
    _, _, children = run_grid(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5")
    assert len(children) == 2
    assert any((tmp_path / "sweep" / ".submitit").iterdir())


def test_reused_workers_follow_the_sweeps_store_not_their_stale_environment(workers_env, tmp_path,
                                                                            monkeypatch):
    """joblib keeps its worker processes between sweeps in one Python process, with the environment
    they started with. A second sweep on another store (MLFLOW_TRACKING_URI changed in between)
    must still nest its jobs under its own parent run, in its own store."""
    run_grid(tmp_path / "first", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")  # workers start
    first_store = os.environ["MLFLOW_TRACKING_URI"]
    second = tmp_path / "second_store"
    second.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{second / 'mlflow.db'}")
    _, parent, children = run_grid(tmp_path / "second", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert len(children) == 2
    assert {c.data.tags["ftlab.sweep.dir"] for c in children} == {str(tmp_path / "second" / "sweep")}
    from mlflow.tracking import MlflowClient

    old = MlflowClient(tracking_uri=first_store)
    runs = [r for e in old.search_experiments() for r in old.search_runs([e.experiment_id])]
    assert len(runs) == 3  # the first sweep's parent and 2 jobs; none of the second sweep's
