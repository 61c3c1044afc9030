"""A training checkpoint is resumed only by the config that wrote it, backend settings included.

Written against the backend's public ``train()`` and the files it leaves, so it outlives a refactor
of the training loop's internals.
"""

from __future__ import annotations

import warnings

import pytest
from local_peft_helpers import Recorder, make_cfg, make_examples, make_prompt

from ftlab.contract import TrainJob

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
TRAIN = {"max_steps": 6, "logging_steps": 1,
         "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}


class Interrupt(Exception):
    pass


def _train(tmp_path, backend: dict, crash_at: int | None = None):
    from ftlab_local_peft.backend import LocalPeftBackend

    cfg = make_cfg(train=TRAIN, backend={"checkpoint_steps": 3, **backend})
    out, run = tmp_path / "out", tmp_path / "run"
    out.mkdir(exist_ok=True)
    run.mkdir(exist_ok=True)
    rec = Recorder(run)
    if crash_at is not None:
        def log(metrics, step=None):
            if step == crash_at:
                raise Interrupt
        rec.ctx.log_metrics = log
    return LocalPeftBackend(cfg, rec.ctx).train(
        TrainJob(train=make_examples(16), eval=(), prompt=make_prompt(cfg), out_dir=out))


@pytest.mark.parametrize("changed", [{"max_grad_norm": 0.25}, {"group_by_length": False}])
def test_a_checkpoint_written_under_other_backend_settings_is_not_resumed(tmp_path, changed):
    with pytest.raises(Interrupt):
        _train(tmp_path, {}, crash_at=5)  # killed after step 3's checkpoint
    assert (tmp_path / "out" / "checkpoint" / "trainer_state.json").is_file()
    with pytest.warns(UserWarning, match="ignoring checkpoint .* another config"):
        again = _train(tmp_path, changed)
    assert again.metrics["train/resumed_from_step"] == 0  # trained from the start under the new setting


def test_the_same_settings_resume_from_the_checkpoint(tmp_path):
    with pytest.raises(Interrupt):
        _train(tmp_path, {}, crash_at=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        again = _train(tmp_path, {})
    assert again.metrics["train/resumed_from_step"] == 3
