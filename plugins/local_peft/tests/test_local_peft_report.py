"""The trainer's intermediate reports (``RunContext.report``), which an Optuna search prunes on."""

from __future__ import annotations

import dataclasses

import pytest
from local_peft_helpers import LABELS, Recorder, make_examples, make_prompt

from ftlab.contract import Pruned, TrainJob

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def _train(tmp_path, report, epochs: float):
    from ftlab_local_peft.backend import LocalPeftBackend

    from ftlab.config.compose import compose, validate
    from ftlab.plugins import Plugins

    plugins = Plugins(load_entry_points=True)
    cfg = validate(compose(["backend=local_peft", "model=tiny_random", f"data.labels=[{','.join(LABELS)}]",
                            "backend.progress=false", "backend.dtype=float32", "backend.checkpoint_steps=0",
                            "train.lora.r=4", "train.lora.alpha=8",
                            "train.lora.target_modules=[q_proj,v_proj]",
                            "prompt.max_input_tokens=64", "train.max_steps=-1", f"train.epochs={epochs}",
                            "train.eval_loss=true", "train.batch_size=4"], plugins), plugins)
    rec = Recorder(tmp_path)
    ctx = dataclasses.replace(rec.ctx, report=report)
    (tmp_path / "out").mkdir()
    job = TrainJob(train=make_examples(8), eval=make_examples(4, "eval", seed=1), prompt=make_prompt(cfg),
                   out_dir=tmp_path / "out")
    return LocalPeftBackend(cfg, ctx).train(job), rec


def test_eval_loss_is_reported_once_per_epoch_with_the_epochs_begun_as_step(tmp_path):
    calls = []
    trained, rec = _train(tmp_path, lambda values, step: calls.append((step, dict(values))), 2.5)
    logged = [row["train/eval_loss"] for _, row in rec.rows if "train/eval_loss" in row]
    assert [s for s, _ in calls] == [1, 2, 3], "after epochs 1 and 2, and at the end of the half epoch"
    assert [v["train/eval_loss"] for _, v in calls] == pytest.approx(logged)
    assert all(set(v) == {"train/eval_loss"} for _, v in calls)


def test_a_pruning_report_stops_training_at_that_epoch(tmp_path):
    calls = []

    def prune_at_first(values, step):
        calls.append(step)
        raise Pruned(step)

    with pytest.raises(Pruned) as info:
        _train(tmp_path, prune_at_first, 3)
    assert info.value.step == 1 and calls == [1], "no training after the pruning report"
