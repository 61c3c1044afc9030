"""Run folders stay inside themselves: each path a folder's files or a run's tags name is checked.

Each test plants what a reviewer planted (a journal line, a state.json, a tag, an mlflow_run.json, a
config.yaml) and checks the command refuses it and touched nothing outside the folder.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from conftest import ROOT, mlflow_client


def _run_id(run_dir):
    return json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]


def _uploaded(run_id):
    from ftlab.tracking.sync import _remote_files

    return set(_remote_files(mlflow_client(), run_id))


@pytest.fixture
def outside(tmp_path):
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("not for upload\n")
    return secret


@pytest.mark.parametrize("entry", [
    lambda secret, run_dir: {"op": "artifact", "path": str(secret), "artifact_path": "eval"},
    lambda secret, run_dir: {"op": "artifact", "path": f"../outside/{secret.name}", "artifact_path": None},
    lambda secret, run_dir: ((run_dir / "link").symlink_to(secret),
                             {"op": "artifact", "path": "link", "artifact_path": None})[1],
    lambda secret, run_dir: ((run_dir / "linkdir").symlink_to(secret.parent, target_is_directory=True),
                             {"op": "artifact", "path": "linkdir", "artifact_path": None})[1],
    lambda secret, run_dir: {"op": "artifact", "path": "config.yaml", "artifact_path": "../../x"},
], ids=["absolute", "dotdot", "symlink", "symlinked-folder", "artifact-path-dotdot"])
def test_sync_refuses_a_planted_journal_path_and_uploads_nothing(run_experiment, outside, entry, capsys):
    from ftlab.cli import main as cli
    from ftlab.tracking import journal

    _, run_dir = run_experiment("stages=[evaluate_base]")
    before = _uploaded(_run_id(run_dir))
    e = entry(outside, run_dir)
    journal.append(run_dir, e.pop("op"), **e)
    journal.append(run_dir, "params", params={"planted.param": "1"})
    assert cli(["sync", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert ("outside" in err or "stay inside" in err) and "nothing was uploaded" in err
    after = _uploaded(_run_id(run_dir))
    assert after == before and not any("id_rsa" in a for a in after)
    assert "planted.param" not in mlflow_client().get_run(_run_id(run_dir)).data.params


def test_resume_refuses_a_planted_tuned_model_path_in_state_json(run_experiment, fake_backend, tmp_path):
    from ftlab.config.compose import compose
    from ftlab.runner import StageError, run

    _, run_dir = run_experiment()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(run_dir / "train" / "fake_model.json", elsewhere / "fake_model.json")
    state = json.loads((run_dir / "state.json").read_text())
    state["trained"]["uri"] = str(elsewhere / "fake_model.json")
    state["evaluated"] = ["base/eval"]  # the tuned evaluation would load it
    (run_dir / "state.json").write_text(json.dumps(state))
    with pytest.raises(StageError, match=r"state.json \('trained'\) names .*elsewhere.* outside"):
        run(compose(["+experiment=smoke", "backend=fake", f"resume={run_dir}"], fake_backend),
            plugins=fake_backend)


def _rows(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join((ROOT / "data/mtsamples17/eval.jsonl").read_text().splitlines()[:6]) + "\n")
    return rows


def test_predict_never_loads_a_tuned_model_a_planted_tag_points_at(run_experiment, tmp_path, capsys):
    from ftlab.cli import main as cli

    _, run_dir = run_experiment()
    run_id = _run_id(run_dir)
    rows = _rows(tmp_path)
    assert cli(["predict", run_id, "-i", str(rows), "-o", str(tmp_path / "want.jsonl"), "--no-progress"]) == 0
    planted = tmp_path / "planted" / "fake_model.json"
    planted.parent.mkdir()
    planted.write_text("{not json: loading this file would fail")
    ref = json.loads(mlflow_client().get_run(run_id).data.tags["ftlab.trained_model"])
    mlflow_client().set_tag(run_id, "ftlab.trained_model", json.dumps({**ref, "uri": str(planted)}))

    # the run folder is here: the tag (like state.json) may only name a model inside it
    state = json.loads((run_dir / "state.json").read_text())
    state["trained"]["uri"] = str(planted)
    (run_dir / "state.json").write_text(json.dumps(state))
    assert cli(["predict", run_id, "-i", str(rows), "-o", str(tmp_path / "a.jsonl"), "--no-progress"]) == 2
    assert "outside" in capsys.readouterr().err

    # the folder is gone: the model comes from the run's own artifacts, never from the tag's path
    shutil.rmtree(run_dir)
    assert cli(["predict", run_id, "-i", str(rows), "-o", str(tmp_path / "b.jsonl"), "--no-progress"]) == 0
    strip = lambda p: [{k: v for k, v in json.loads(x).items() if k != "latency_s"}  # noqa: E731
                       for x in p.read_text().splitlines()]
    assert strip(tmp_path / "b.jsonl") == strip(tmp_path / "want.jsonl")


def test_a_run_folder_cannot_point_lookups_at_another_sqlite_store(run_experiment, tmp_path):
    from ftlab.runs import RunNotFound, find_runs

    _, run_dir = run_experiment("stages=[evaluate_base]")
    other = tmp_path / "someone_elses" / "mlflow.db"
    other.parent.mkdir()
    rec = json.loads((run_dir / "mlflow_run.json").read_text())
    (run_dir / "mlflow_run.json").write_text(json.dumps({**rec, "tracking_uri": f"sqlite:///{other}"}))
    with pytest.raises(RunNotFound, match=r"names the local MLflow store .*someone_elses.* refusing"):
        find_runs(str(run_dir))
    assert not other.exists()  # never opened (opening would have created it)
    (run,) = find_runs(str(run_dir), f"sqlite:///{other}")  # named by the user: fine (empty store → folder)
    assert run.run_dir == run_dir.resolve()


def test_a_tag_cannot_lend_a_run_another_folder(run_experiment, tmp_path):
    """``ftlab.run_dir`` names the folder whose files stand for the run: only one that says it is this run's."""
    from ftlab.runs import find_run

    _, run_dir = run_experiment("stages=[evaluate_base]")
    run_id = _run_id(run_dir)
    fake = tmp_path / "planted_folder"
    fake.mkdir()
    (fake / "config.yaml").write_text("planted: true\n")
    mlflow_client().set_tag(run_id, "ftlab.run_dir", str(fake))
    rec = find_run(run_id)
    assert rec.run_dir is None and rec.text("config.yaml") != "planted: true\n"


def test_replay_refuses_an_experiment_name_that_leaves_outputs(run_experiment, tmp_path, capsys):
    from ftlab.cli import main as cli

    _, run_dir = run_experiment("stages=[evaluate_base]")
    escape = tmp_path / "escape"  # absolute: outputs/<experiment> would be this folder
    text = (run_dir / "config.yaml").read_text().replace("experiment: smoke", f"experiment: '{escape}'")
    (run_dir / "config.yaml").write_text(text)
    (run_dir / "mlflow_run.json").unlink()  # the folder alone is the record
    assert cli(["replay", str(run_dir)]) == 2
    assert "is not a plain name" in capsys.readouterr().err
    assert not escape.exists()


def test_an_experiment_name_with_a_path_is_refused_at_validation(plugins):
    from ftlab.config.compose import ConfigError, compose, validate

    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(compose(["+experiment=smoke"], plugins), resolve=True)
    cfg.pop("hydra", None)
    for name in ("../x", "..", "a/b", "/tmp/x", ""):
        with pytest.raises(ConfigError, match=f"experiment '{re.escape(name)}' is not a plain name"):
            validate({**cfg, "experiment": name}, plugins)
    validate({**cfg, "experiment": "mtsamples17_lora-v2.1"}, plugins)
