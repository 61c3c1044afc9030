"""Pruning of Optuna trials on intermediate values, end to end in-process, checked through the study
and MlflowClient. A fake backend reports a scripted eval-loss curve (``loss_offset + 1/epoch``), so
which trial is pruned follows from the enqueued parameters, not from chance."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from fake_backend import FakeBackend, FakeConfig
from hydra.experimental.callback import Callback
from test_sweeps import ftlab_main, parent_and_children

from ftlab import hookimpl
from ftlab.contract import Capabilities


@dataclass
class FakeCurveConfig(FakeConfig):
    """The fake backend, reporting an eval loss of ``loss_offset + 1/epoch`` after each epoch."""

    name: str = "fake_curve"
    """Backend name."""
    loss_offset: float = 0.0
    """Added to every intermediate eval loss (a large offset = a clearly worse trial)."""
    n_epochs: int = 3
    """Epochs (intermediate reports) before the fake training returns."""


class FakeCurveBackend(FakeBackend):
    def train(self, job):
        self.ctx.set_tags({"fake.pid": str(os.getpid())})  # which process ran the job
        for epoch in range(1, self.cfg.backend.n_epochs + 1):
            loss = self.cfg.backend.loss_offset + 1.0 / epoch
            self.ctx.log_metrics({"train/eval_loss": loss}, epoch)
            self.ctx.report({"train/eval_loss": loss}, epoch)
        return super().train(job)


class FakeCurvePlugin:
    @hookimpl
    def ftlab_register_backends(self, register):
        register("fake_curve", lambda cfg, ctx: FakeCurveBackend(cfg, ctx), FakeCurveConfig,
                 Capabilities(intermediate_values=("train/eval_loss",)))


class RegisterCurve(Callback):
    """``+hydra.callbacks.curve._target_=test_sweep_pruning.RegisterCurve``: the backend in workers."""

    def on_job_start(self, config, **kwargs) -> None:
        from ftlab.plugins import get_plugins

        plugins = get_plugins()
        if plugins.pm.get_plugin("fake_curve_plugin") is None:
            plugins.register(FakeCurvePlugin(), name="fake_curve_plugin")


@pytest.fixture
def curve_plugins(fake_backend):
    name = fake_backend.register(FakeCurvePlugin(), name="fake_curve_plugin")
    yield fake_backend
    fake_backend.unregister(name)


STUDY = "prune_test"
SPACE = "backend.loss_offset=choice(0.0,5.0)"
MEDIAN = ("hydra.sweeper.pruner.name=median", "hydra.sweeper.pruner.n_startup_trials=1")


def _url() -> str:
    from ftlab.sweeps.search import storage_url

    return storage_url(None, os.environ["MLFLOW_TRACKING_URI"])


def _enqueue(*offsets: float):
    """The study, created as the sweeper would, with one trial per offset queued in this order."""
    import optuna

    study = optuna.create_study(study_name=STUDY, storage=_url(), direction="maximize")
    for off in offsets:
        study.enqueue_trial({"backend.loss_offset": off})
    return study


def _search(tmp_path: Path, folder: str, n_trials: int, *extra: str, backend: str = "fake_curve") -> int:
    return ftlab_main("-m", "+experiment=smoke", f"backend={backend}", "hydra/sweeper=ftlab_optuna",
                      f"hydra.sweeper.study_name={STUDY}", f"hydra.sweeper.n_trials={n_trials}",
                      "hydra.sweeper.sampler=random", "hydra.sweeper.seed=3", *extra,
                      f"hydra.sweep.dir={tmp_path / folder}")


def _trials():
    import optuna

    return optuna.load_study(study_name=STUDY, storage=_url()).trials


def _by_trial(children) -> dict:
    return {int(c.data.tags["ftlab.sweep.job_num"]): c for c in children}


def test_a_clearly_worse_trial_is_pruned_and_a_resumed_search_does_not_rerun_it(curve_plugins, tmp_path):
    from optuna.trial import TrialState

    study = _enqueue(0.0, 5.0)
    assert _search(tmp_path, "a", 2, SPACE, *MEDIAN) == 0
    trials = _trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    pruned = trials[1]
    assert pruned.params == {"backend.loss_offset": 5.0}
    # the loss is minimised, the study maximises macro-F1: the study holds the negated loss
    assert pruned.intermediate_values == {1: pytest.approx(-6.0)}
    assert pruned.user_attrs["ftlab.pruned_at_step"] == 1
    assert trials[0].intermediate_values == {1: pytest.approx(-1.0), 2: pytest.approx(-0.5),
                                             3: pytest.approx(-1 / 3)}

    # resumed: the pruned trial counts as finished and is not run again; one new trial completes
    study.enqueue_trial({"backend.loss_offset": 0.0})
    assert _search(tmp_path, "b", 3, SPACE, *MEDIAN) == 0
    trials = _trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    assert [t.params["backend.loss_offset"] for t in trials] == [0.0, 5.0, 0.0]
    assert trials[1].intermediate_values == {1: pytest.approx(-6.0)}, "the pruned trial was not re-run"

    client, parent, children = parent_and_children()
    assert len(children) == 3, "one MLflow run per trial: nothing repeated"
    runs = _by_trial(children)
    assert sorted(runs) == [0, 1, 2]
    bad = runs[1]
    assert bad.info.status == "KILLED"
    assert bad.data.tags["ftlab.pruned"] == "true" and bad.data.tags["ftlab.pruned_at_step"] == "1"
    assert bad.data.tags["ftlab.optuna.trial"] == "1"
    assert bad.data.metrics["train/eval_loss"] == pytest.approx(6.0), "MLflow keeps the raw loss"
    assert "eval/tuned/eval/macro_f1" not in bad.data.metrics, "a pruned run stops before evaluation"
    for n in (0, 2):
        good = runs[n]
        assert good.info.status == "FINISHED" and "ftlab.pruned" not in good.data.tags
        assert good.data.metrics["eval/tuned/eval/macro_f1"] == pytest.approx(trials[n].value)
    table = client.load_table(parent.info.experiment_id, "sweep/ranking.json", run_ids=[parent.info.run_id])
    status = dict(zip(table["run_id"], table["status"]))
    assert status[bad.info.run_id] == "PRUNED" and table["status"].iloc[-1] == "PRUNED"
    assert parent.data.metrics["sweep/n_jobs"] == 3 and parent.data.metrics["sweep/n_finished"] == 2


def test_jobs_in_worker_processes_report_to_their_trial_through_the_storage(curve_plugins, tmp_path,
                                                                            monkeypatch):
    from optuna.trial import TrialState

    from joblib.externals.loky import get_reusable_executor

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # workers import this module
    # fresh workers: loky keeps its workers across calls in this process, and an earlier test's
    # workers may lack this PYTHONPATH (their store they now take from the sweep: test_sweep_launchers)
    get_reusable_executor().shutdown(wait=True)
    _enqueue(0.0, 5.0)
    assert _search(tmp_path, "a", 2, SPACE, *MEDIAN, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                   "+hydra.callbacks.curve._target_=test_sweep_pruning.RegisterCurve") == 0
    trials = _trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert trials[1].intermediate_values == {1: pytest.approx(-6.0)}
    _, _, children = parent_and_children()
    runs = _by_trial(children)
    assert {r.data.tags["fake.pid"] for r in runs.values()}.isdisjoint({str(os.getpid())})
    assert runs[1].info.status == "KILLED" and runs[1].data.tags["ftlab.pruned"] == "true"
    assert runs[0].info.status == "FINISHED"


def test_pruning_is_off_by_default_so_every_trial_completes(curve_plugins, tmp_path):
    from optuna.trial import TrialState

    _enqueue(0.0, 5.0, 5.0)
    assert _search(tmp_path, "a", 3, SPACE) == 0
    trials = _trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(t.intermediate_values == {} and "ftlab.pruned_at_step" not in t.user_attrs for t in trials)
    _, _, children = parent_and_children()
    assert len(children) == 3
    assert all(c.info.status == "FINISHED" and "ftlab.pruned" not in c.data.tags for c in children)


def test_a_backend_without_intermediate_values_is_never_pruned(curve_plugins, tmp_path, capsys):
    from optuna.trial import TrialState

    assert _search(tmp_path, "a", 3, "backend.junk_every=choice(0,2,7)", "hydra.sweeper.pruner.name=median",
                   "hydra.sweeper.pruner.n_startup_trials=0", backend="fake") == 0
    trials = _trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(t.intermediate_values == {} for t in trials)
    out = capsys.readouterr()
    assert "does not report 'train/eval_loss'" in out.out + out.err
    _, _, children = parent_and_children()
    assert all(c.info.status == "FINISHED" for c in children)


def test_a_trial_pruned_before_its_driver_died_is_marked_pruned_not_requeued(curve_plugins, tmp_path):
    import socket

    from optuna.trial import TrialState

    from ftlab.sweeps.search import distributions

    study = _enqueue()
    stale = study.ask(distributions({"backend.loss_offset": "choice(0.0,5.0)"}))
    stale.report(-6.0, 1)
    stale.set_user_attr("ftlab.driver", f"{socket.gethostname()}:999999999")
    stale.set_user_attr("ftlab.pruned_at_step", 1)
    assert _search(tmp_path, "a", 2, SPACE, *MEDIAN) == 0
    trials = _trials()
    assert trials[0].state == TrialState.PRUNED and "ftlab.interrupted" not in trials[0].user_attrs
    assert [t.state for t in trials[1:]] == [TrialState.COMPLETE], "one new trial: the pruned one counts"
    assert all("ftlab.retry_of" not in t.user_attrs for t in trials)


def test_a_plain_override_fixes_a_key_of_the_configured_space():
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from ftlab.sweeps.search import Search

    class Launcher:
        jobs: list = []

        def launch(self, jobs, initial_job_idx):
            self.jobs += jobs
            return [SimpleNamespace(return_value=0.5) for _ in jobs]

    config = OmegaConf.create({"experiment": "fix", "tracking": {"uri": os.environ["MLFLOW_TRACKING_URI"]},
                               "sweep": {"direction": "maximize"}, "seeds": None})
    launcher = Launcher()
    Search(config, launcher, n_trials=2, n_jobs=1, study_name=STUDY, storage=None, sampler="random", seed=0,
           params={"train.method": "choice(lora,lora_cls)", "train.lora.r": "choice(4,8)"},
           pruner={"name": "median"}).run(["train.method=lora", "train.epochs=2"])
    assert [t.params.keys() for t in _trials()] == [{"train.lora.r"}, {"train.lora.r"}]
    assert all("train.method=lora" in job and not any(a.startswith("train.method=lora_cls") for a in job)
               for job in launcher.jobs)
    assert all(any(a.startswith("++hydra.job.env_set.FTLAB_TRIAL=") for a in job) for job in launcher.jobs)


@pytest.mark.parametrize("name,cls", [("none", "NopPruner"), ("median", "MedianPruner"),
                                      ("successive_halving", "SuccessiveHalvingPruner"),
                                      ("hyperband", "HyperbandPruner")])
def test_pruner_choice_builds_the_optuna_pruner(name, cls):
    from ftlab.sweeps.prune import make_pruner

    pruner = make_pruner({"pruner": {"name": name, "min_resource": 1, "reduction_factor": 2}})
    assert type(pruner).__name__ == cls


def test_an_unknown_pruner_is_an_error_naming_the_choices():
    from ftlab.sweeps.prune import make_pruner

    with pytest.raises(ValueError, match="median, successive_halving, hyperband"):
        make_pruner({"pruner": {"name": "patient"}})
