"""``ftlab launch`` and :mod:`ftlab.ranks`: the command lines, the refusals, the follower's rules.

The launched runs themselves (torchrun, Ray Train) are the backend's tests
(plugins/local_peft/tests/test_local_peft_distributed.py); these check the host's part fast.
"""

from __future__ import annotations

import json
import sys

import pytest

from ftlab import ranks
from ftlab.cli import launch_cmd


def test_torchrun_command_on_one_machine_and_on_several():
    one = launch_cmd.torchrun_command({"--nproc": "4"}, ["+experiment=smoke", "train.lora.r=4"])
    assert one[:4] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=4"]
    assert "--standalone" in one
    assert one[-4:] == ["ftlab.cli.launch_cmd", "--as-rank", "+experiment=smoke", "train.lora.r=4"]
    opts, rest = launch_cmd._split(["--nproc=2", "--nnodes", "2", "--node-rank=1", "--rdzv-endpoint",
                                    "head:29500", "+experiment=smoke"])
    assert rest == ["+experiment=smoke"]
    many = launch_cmd.torchrun_command(opts, rest)
    assert "--standalone" not in many
    assert {"--nnodes=2", "--node-rank=1", "--rdzv-endpoint=head:29500"} <= set(many)


@pytest.mark.parametrize("args, message", [
    (["--nproc", "two"], "--nproc must be a whole number"),
    (["--nproc", "0"], "--nproc must be at least 1"),
    (["--nnodes", "2", "+experiment=smoke"], "need --nproc"),
    (["--nproc", "2", "-m", "+experiment=smoke"], "a multirun (-m) spreads runs"),
])
def test_bad_launch_options_are_refused_by_name(args, message):
    with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(")", r"\)")):
        launch_cmd.main(args)


def test_without_nproc_or_ray_workers_the_launch_says_which_key_to_set(fake_backend, capsys):
    assert launch_cmd.main(["+experiment=smoke", "backend=fake"]) == 2
    err = capsys.readouterr().err
    assert "--nproc N" in err and "backend.ray_train.num_workers" in err and "no ray_train settings" in err


def test_only_rank_0_of_a_launched_run_leads(monkeypatch):
    for rank, world, follows in [(None, None, False), ("0", "2", False), ("1", "2", True), ("1", "1", False)]:
        for var, value in (("RANK", rank), ("WORLD_SIZE", world)):
            if value is None:
                monkeypatch.delenv(var, raising=False)
            else:
                monkeypatch.setenv(var, value)
        assert ranks.follower() is follows


def test_a_backend_without_follow_cannot_be_a_follower_rank(fake_backend, monkeypatch):
    from ftlab.plugins import PluginError

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = ranks.compose_typed(["+experiment=smoke", "backend=fake"], fake_backend)
    with pytest.raises(PluginError, match="backend 'fake' cannot run over several processes"):
        ranks.follow(cfg, fake_backend)


def test_rank_0_nests_under_the_launchers_parent_run_on_the_same_store(monkeypatch):
    from ftlab.sweeps.context import job_tags, uri_id

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv(ranks.PARENT_ENV, json.dumps({"run_id": "abc", "tracking_uri_id": uri_id("sqlite:///a.db")}))
    assert job_tags("sqlite:///a.db") == {"ftlab.launch.world_size": "2", "mlflow.parentRunId": "abc"}
    assert "mlflow.parentRunId" not in job_tags("sqlite:///other.db")
    monkeypatch.delenv(ranks.PARENT_ENV)
    assert job_tags("sqlite:///a.db") == {}
