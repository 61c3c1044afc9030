"""Host test fixtures: isolated MLflow store, a plugin manager with the fake backend."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own MLflow store and never writes to the project's mlflow.db."""
    store = tmp_path_factory.mktemp("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path_factory.mktemp("mpl")))
    monkeypatch.setenv("FTLAB_HOME", str(ROOT))
    yield


@pytest.fixture
def plugins():
    """A fresh plugin manager (entry points loaded) installed as the process-wide one."""
    from ftlab.plugins import Plugins, set_plugins

    pm = Plugins(load_entry_points=True)
    set_plugins(pm)
    yield pm
    set_plugins(None)


@pytest.fixture
def fake_backend(plugins):
    """Register the fake backend for one test and unregister it afterwards."""
    from fake_backend import FakePlugin

    name = plugins.register(FakePlugin(), name="fake_backend_plugin")
    yield plugins
    plugins.unregister(name)


@pytest.fixture
def run_experiment(fake_backend, tmp_path):
    """Compose like the CLI and run in-process: ``run_experiment(*overrides) -> (objective, dir)``."""
    from ftlab.config.compose import compose
    from ftlab.runner import run

    def _run(*overrides: str):
        cfg = compose(["+experiment=smoke", "backend=fake", *overrides], fake_backend)
        run_dir = tmp_path / "run"
        return run(cfg, run_dir=run_dir, plugins=fake_backend), run_dir

    return _run


def mlflow_client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def benchmark_module(name: str):
    """Import ``benchmarks/<name>.py`` (a script folder, not a package) for its tests, with that folder
    on ``sys.path`` as when the script runs (``from _common import …``)."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    if str(root / "benchmarks") not in sys.path:
        sys.path.append(str(root / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, root / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
