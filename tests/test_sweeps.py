"""Sweeps end to end on the fake backends, in-process (Hydra's basic launcher), checked in MLflow."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import mlflow_client
from sweep_helpers import register_fakes

HERE = Path(__file__).parent


@pytest.fixture
def sweep_plugins(fake_backend):
    names = register_fakes(fake_backend)
    yield fake_backend
    for n in names:
        fake_backend.unregister(n)


def ftlab_main(*args: str) -> int:
    """The ftlab CLI in this process (so the fake backends registered here are seen)."""
    from hydra.core.global_hydra import GlobalHydra

    from ftlab.cli.run_cmd import main

    GlobalHydra.instance().clear()
    try:
        return main(list(args))
    finally:
        GlobalHydra.instance().clear()


def parent_and_children(experiment: str = "smoke"):
    client = mlflow_client()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("ftlab.sweep") == "parent"]
    assert len(parents) == 1, [r.data.tags for r in parents]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(runs) == 1 + len(children), "every job run must be nested under the parent"
    return client, parents[0], children


def test_grid_gives_one_parent_with_ranking_and_nested_children(sweep_plugins, tmp_path, capsys):
    rc = ftlab_main("-m", "+experiment=smoke", "backend=fake", "backend.junk_every=0,2",
                    "data.max_train_rows=4,32", "sweep.objective=compare/eval/macro_f1_delta",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert rc == 0
    client, parent, children = parent_and_children()
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    combos = {(c.data.params["backend.junk_every"], c.data.params["data.max_train_rows"]) for c in children}
    assert combos == {("0", "4"), ("0", "32"), ("2", "4"), ("2", "32")}
    key = "compare/eval/macro_f1_delta"
    assert parent.data.tags["ftlab.sweep.objective"] == key
    assert parent.data.params["sweep.direction"] == "maximize"
    assert "backend.junk_every=0,2" in parent.data.params["sweep.overrides"]
    values = {c.info.run_id: c.data.metrics[key] for c in children}
    assert len(set(values.values())) == 4, "the grid must change the objective for the ranking to mean anything"
    best_id = max(values, key=values.get)
    assert parent.data.metrics["sweep/best_objective"] == pytest.approx(max(values.values()))
    assert parent.data.metrics["sweep/n_jobs"] == 4
    table = client.load_table(parent.info.experiment_id, "sweep/ranking.json", run_ids=[parent.info.run_id])
    assert list(table["rank"]) == [1, 2, 3, 4]
    assert list(table["objective"]) == pytest.approx(sorted(values.values(), reverse=True))
    assert table["run_id"].iloc[0] == best_id
    assert {"backend.junk_every", "data.max_train_rows"} <= set(table.columns)
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert {"sweep/best_config.yaml", "sweep/ranking.csv", "sweep/objective_vs_backend.junk_every.png",
            "sweep/objective_vs_data.max_train_rows.png"} <= arts
    best = client.get_run(best_id)
    best_yaml = Path(client.download_artifacts(parent.info.run_id, "sweep/best_config.yaml", str(tmp_path)))
    assert f"junk_every: {best.data.params['backend.junk_every']}" in best_yaml.read_text()
    out = capsys.readouterr().out
    assert "rank" in out and best_id in out and out.rindex(best_id) > out.rindex("run folder:")


def test_seeds_report_mean_std_and_t_interval_on_the_parent(sweep_plugins, tmp_path):
    rc = ftlab_main("+experiment=smoke", "backend=fake_seeded", "seeds=[1,2,3]",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert rc == 0
    client, parent, children = parent_and_children()
    assert sorted(c.data.params["seed"] for c in children) == ["1", "2", "3"]
    assert sorted(c.data.params["train.seed"] for c in children) == ["1", "2", "3"]
    m = parent.data.metrics
    assert m["seeds/n"] == 3
    for key in ("eval/tuned/eval/macro_f1", "eval/tuned/eval/lenient/macro_f1", "eval/tuned/eval/accuracy",
                "compare/eval/macro_f1_delta"):
        vals = [c.data.metrics[key] for c in children]
        mean = sum(vals) / 3
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / 2)
        half = 4.302652729911275 * std / math.sqrt(3)  # t(0.975, 2 dof)
        assert m[f"seeds/{key}/mean"] == pytest.approx(mean)
        assert m[f"seeds/{key}/std"] == pytest.approx(std)
        assert m[f"seeds/{key}/ci_low"] == pytest.approx(mean - half)
        assert m[f"seeds/{key}/ci_high"] == pytest.approx(mean + half)
    assert m["seeds/eval/tuned/eval/macro_f1/std"] > 0, "seeds must change the result"
    table = client.load_table(parent.info.experiment_id, "sweep/seed_stats.json", run_ids=[parent.info.run_id])
    assert set(table["n"]) == {3}


def _study(tmp_path_store: str, name: str):
    import optuna

    db = Path(tmp_path_store[len("sqlite:///"):]).parent / "optuna.db"
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


OPTUNA_ARGS = ("-m", "+experiment=smoke", "backend=fake", "hydra/sweeper=ftlab_optuna",
               "hydra.sweeper.sampler=random", "hydra.sweeper.seed=7",
               "backend.junk_every=int(interval(0,9))", "data.max_train_rows=choice(4,8,16,32)",
               "hydra.sweeper.study_name=resume_test")


def test_optuna_search_resumes_the_same_study_without_repeating_trials(sweep_plugins, tmp_path):
    import os

    from optuna.trial import TrialState

    assert ftlab_main(*OPTUNA_ARGS, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / 'a'}") == 0
    study = _study(os.environ["MLFLOW_TRACKING_URI"], "resume_test")
    first = [(t.number, t.params, t.value) for t in study.trials]
    assert [t[0] for t in first] == [0, 1] and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert ftlab_main(*OPTUNA_ARGS, "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={tmp_path / 'b'}") == 0
    study = _study(os.environ["MLFLOW_TRACKING_URI"], "resume_test")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert [(t.number, t.params, t.value) for t in study.trials[:2]] == first, "finished trials untouched"
    client, parent, children = parent_and_children()  # the second run reopened the same parent
    assert len(children) == 4
    assert sorted(int(c.data.tags["ftlab.sweep.job_num"]) for c in children) == [0, 1, 2, 3]
    by_job = {int(c.data.tags["ftlab.sweep.job_num"]): c for c in children}
    for t in study.trials:
        c = by_job[t.number]
        assert c.data.params["backend.junk_every"] == str(t.params["backend.junk_every"])
        assert c.data.metrics["eval/tuned/eval/macro_f1"] == pytest.approx(t.value)
    assert parent.data.metrics["sweep/n_jobs"] == 4
    assert parent.data.metrics["sweep/best_objective"] == pytest.approx(study.best_value)


def test_optuna_requeues_a_trial_left_running_by_a_dead_driver(sweep_plugins, tmp_path):
    import os

    import optuna
    from optuna.trial import TrialState

    from ftlab.sweeps.search import distributions, storage_url

    url = storage_url(None, os.environ["MLFLOW_TRACKING_URI"])
    study = optuna.create_study(study_name="resume_test", storage=url, direction="maximize")
    dists = distributions({"backend.junk_every": "int(interval(0,9))",
                           "data.max_train_rows": "choice(4,8,16,32)"})
    stale = study.ask(dists)
    stale.set_user_attr("ftlab.driver", f"{__import__('socket').gethostname()}:999999999")
    assert ftlab_main(*OPTUNA_ARGS, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / 'a'}") == 0
    trials = _study(os.environ["MLFLOW_TRACKING_URI"], "resume_test").trials
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["ftlab.interrupted"] is True
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 2 and done[0].params == stale.params and done[0].user_attrs["ftlab.retry_of"] == 0


@pytest.mark.parametrize("name", ["hpo_lora", "search_default_recipe"])
def test_search_experiments_have_a_valid_space_over_existing_keys(name, plugins):
    from omegaconf import OmegaConf

    from ftlab.config.compose import compose, validate
    from ftlab.sweeps.search import distributions

    cfg = compose([f"+experiment={name}"], plugins, return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper.method == "optuna" and cfg.sweep.objective == "cv/macro_f1_mean"  # selects on train
    assert cfg.eval.cv.folds >= 2 and [getattr(s, "value", s) for s in cfg.stages] == ["cross_validate"]
    space = distributions(dict(sweeper.params))
    assert len(space) >= 5
    for key, dist in space.items():
        assert OmegaConf.select(cfg, key, throw_on_missing=True) is not None, key
        for value in getattr(dist, "choices", ()):  # every choice must validate as that key
            validate(compose([f"+experiment={name}", f"{key}={value}"], plugins))


def test_a_failed_job_stops_the_grid_but_the_parent_is_ranked_and_closed(sweep_plugins, tmp_path, capsys):
    rc = ftlab_main("-m", "+experiment=smoke", "backend=fake", "backend.fail_predict=false,true",
                    "stages=[evaluate_base]", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert rc != 0
    client, parent, children = parent_and_children()
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED"]
    assert parent.info.status == "FAILED" and parent.data.metrics["sweep/n_finished"] == 1
    table = client.load_table(parent.info.experiment_id, "sweep/ranking.json", run_ids=[parent.info.run_id])
    assert list(table["status"]) == ["FINISHED", "FAILED"]
    assert "rank" in capsys.readouterr().out


def test_optuna_with_seeds_tells_the_mean_over_seeds(sweep_plugins, tmp_path):
    import os

    rc = ftlab_main("-m", "+experiment=smoke", "backend=fake_seeded", "hydra/sweeper=ftlab_optuna",
                    "hydra.sweeper.n_trials=1", "hydra.sweeper.study_name=seeded", "seeds=[1,2]",
                    "data.max_train_rows=choice(16,32)", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert rc == 0
    (trial,) = _study(os.environ["MLFLOW_TRACKING_URI"], "seeded").trials
    client, parent, children = parent_and_children()
    assert sorted(c.data.params["seed"] for c in children) == ["1", "2"]
    values = [c.data.metrics["eval/tuned/eval/macro_f1"] for c in children]
    assert trial.value == pytest.approx(sum(values) / 2)
    assert parent.data.metrics["seeds/eval/tuned/eval/macro_f1/mean"] == pytest.approx(trial.value)
