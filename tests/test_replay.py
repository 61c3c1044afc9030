"""``ftlab replay``: same numbers from the record alone, changed inputs refused by name."""

from __future__ import annotations

import json

from conftest import ROOT, mlflow_client


def _original(run_experiment, tmp_path):
    data = tmp_path / "eval.jsonl"
    data.write_text("\n".join((ROOT / "data/mtsamples17/eval.jsonl").read_text().splitlines()[:24]) + "\n")
    _, run_dir = run_experiment(f"data.eval_path={data}")
    return data, run_dir, json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]


def test_replay_reproduces_every_metric_and_refuses_changed_data(run_experiment, tmp_path, capsys):
    from ftlab.cli import main as cli

    data, run_dir, original = _original(run_experiment, tmp_path)
    capsys.readouterr()
    assert cli(["replay", str(run_dir), "--run-dir", str(tmp_path / "replay1")]) == 0
    out = capsys.readouterr().out
    assert "all identical" in out and "eval/tuned/eval/macro_f1" in out
    client = mlflow_client()
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    replays = [r for r in runs if r.data.tags.get("ftlab.replay_of") == original]
    assert len(runs) == 2 and len(replays) == 1
    rec, rep = client.get_run(original).data.metrics, replays[0].data.metrics
    for key in ("eval/base/eval/macro_f1", "eval/tuned/eval/per_class/cardiovascular_pulmonary/f1",
                "compare/eval/macro_f1_delta_ci_low", "train/loss"):
        assert rep[key] == rec[key], key
    preds = "eval/tuned/eval/predictions.jsonl"
    assert (tmp_path / "replay1" / preds).read_text() == (run_dir / preds).read_text()

    # one changed row: refused by name, then replayed with --allow-drift and the differences shown
    lines = data.read_text().splitlines()
    row = json.loads(lines[5])
    row["input_text"] = "neurology neurology neurology " + row["input_text"]
    data.write_text("\n".join(lines[:5] + [json.dumps(row)] + lines[6:]) + "\n")
    assert cli(["replay", original, "--run-dir", str(tmp_path / "replay2")]) == 2
    err = capsys.readouterr().err
    assert f"data file of split 'eval' {data} changed" in err and "--allow-drift" in err
    assert not (tmp_path / "replay2").exists()
    code = cli(["replay", original, "--allow-drift", "--run-dir", str(tmp_path / "replay3")])
    out = capsys.readouterr().out
    assert code in (0, 1) and ("differ" in out if code else "all identical" in out)
    drifted = [r for r in client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
               if "ftlab.replay_drift" in r.data.tags]
    assert len(drifted) == 1 and str(data) in drifted[0].data.tags["ftlab.replay_drift"]


def test_replay_asks_for_masked_secrets(run_experiment, tmp_path, capsys):
    from ftlab.cli import main as cli

    _, run_dir = run_experiment()
    cfg = (run_dir / "config.yaml").read_text().replace("run_name: null", "run_name: '***'")
    (run_dir / "config.yaml").write_text(cfg)
    (run_dir / "mlflow_run.json").unlink()  # read the folder itself
    assert cli(["replay", str(run_dir), "--run-dir", str(tmp_path / "r")]) == 2
    assert "the record masks tracking.run_name" in capsys.readouterr().err


WEIGHTS = {"sha256": "a" * 64}


def test_replay_reports_weights_that_load_differently(fake_backend, tmp_path, capsys):
    """The manifest's ``model.weights_sha256`` (what the backend loaded) is compared too: the same
    metrics from other weights are not a faithful replay."""
    from dataclasses import dataclass

    from fake_backend import FakeBackend, FakeConfig

    from ftlab import hookimpl
    from ftlab.cli import main as cli
    from ftlab.config.compose import compose
    from ftlab.runner import run

    @dataclass
    class HashedConfig(FakeConfig):
        """The fake backend, reporting the hash of 'its weights'."""

        name: str = "fake_hashed"
        """Backend name."""

    class Hashed(FakeBackend):
        def base_model(self):
            self.ctx.set_tags({"model.weights_sha256": WEIGHTS["sha256"]})
            return super().base_model()

    class HashedPlugin:
        @hookimpl
        def ftlab_register_backends(self, register):
            register("fake_hashed", lambda cfg, ctx: Hashed(cfg, ctx), HashedConfig)

    fake_backend.register(HashedPlugin(), name="hashed_plugin")
    run_dir = tmp_path / "run"
    run(compose(["+experiment=smoke", "backend=fake_hashed", "stages=[evaluate_base]"], fake_backend),
        run_dir=run_dir, plugins=fake_backend)
    assert json.loads((run_dir / "manifest.json").read_text())["model"]["weights_sha256"] == "a" * 64
    assert cli(["replay", str(run_dir), "--run-dir", str(tmp_path / "same")]) == 0
    WEIGHTS["sha256"] = "b" * 64  # e.g. a cache file replaced under the home folder
    capsys.readouterr()
    assert cli(["replay", str(run_dir), "--run-dir", str(tmp_path / "other")]) == 1
    out = capsys.readouterr().out
    assert "all identical" in out  # the metrics alone would not tell
    assert "loaded differently: model.weights_sha256: recorded aaaaaaaaaaaa…, replayed bbbbbbbbbbbb…" in out
