"""Checkpoints from a run folder cannot run code, and a crash mid-save keeps the previous one."""

from __future__ import annotations

import json
import random
import warnings

import pytest
import torch


class Payload:
    """Unpickling this creates ``marker``: what a malicious state.pt would do, harmlessly."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _checkpoint_dir(path, fingerprint="fp"):
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"fingerprint": fingerprint, "step": 3}))
    return path


def test_a_planted_pickle_in_state_pt_is_refused_and_not_run(tmp_path):
    from ftlab_local_peft.checkpoint import load_checkpoint

    marker = tmp_path / "pwned"
    ckpt = _checkpoint_dir(tmp_path / "checkpoint")
    torch.save({"optimizer": Payload(marker), "scheduler": {}, "rng": {}}, ckpt / "state.pt")
    with pytest.raises(RuntimeError, match=r"refusing to load .*state.pt: it holds more than tensors"):
        load_checkpoint(ckpt, None, None, None, "fp")
    assert not marker.exists()
    # the payload is live: the old weights_only=False load would have run it
    torch.load(ckpt / "state.pt", weights_only=False)
    assert marker.exists()


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    import numpy as np

    from ftlab_local_peft.checkpoint import rng_state, set_rng_state

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.random(), np.random.normal(), torch.rand(1)  # a cached gaussian, a moved state
    torch.save(rng_state(), tmp_path / "rng.pt")
    want = (random.random(), np.random.normal(), float(torch.rand(1)))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.normal(), float(torch.rand(1))) == want


def _tiny_peft():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = torch.nn.Sequential()
    base.add_module("lin", torch.nn.Linear(4, 4))
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["lin"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    from transformers import get_scheduler

    sched = get_scheduler("linear", opt, num_warmup_steps=1, num_training_steps=10)
    return model, opt, sched


def _step(model, opt, sched):
    model(torch.ones(2, 4)).pow(2).sum().backward()
    opt.step(), sched.step(), opt.zero_grad()


def _lora(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora" in k}


def test_save_then_load_restores_adapter_optimizer_and_scheduler(tmp_path):
    from ftlab_local_peft.checkpoint import load_checkpoint, save_checkpoint

    model, opt, sched = _tiny_peft()
    _step(model, opt, sched)
    ckpt = tmp_path / "checkpoint"
    save_checkpoint(ckpt, model, opt, sched, {"fingerprint": "fp", "step": 1})
    saved, lr = _lora(model), sched.get_last_lr()
    _step(model, opt, sched)
    state = load_checkpoint(ckpt, model, opt, sched, "fp")
    assert state["step"] == 1 and sched.get_last_lr() == lr
    for k, v in _lora(model).items():
        assert torch.equal(v, saved[k]), k
    assert opt.state_dict()["state"][0]["step"] == 1


def test_a_crash_between_the_renames_falls_back_to_the_previous_checkpoint(tmp_path):
    from ftlab_local_peft.checkpoint import load_checkpoint, save_checkpoint

    model, opt, sched = _tiny_peft()
    ckpt = tmp_path / "checkpoint"
    _step(model, opt, sched)
    save_checkpoint(ckpt, model, opt, sched, {"fingerprint": "fp", "step": 1})
    first = _lora(model)
    _step(model, opt, sched)
    save_checkpoint(ckpt, model, opt, sched, {"fingerprint": "fp", "step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # .old removed when done
    # replay save 3's crash window: the new one complete in .tmp, the previous renamed to .old
    save_checkpoint(tmp_path / "elsewhere", model, opt, sched, {"fingerprint": "fp", "step": 3})
    ckpt.rename(tmp_path / "checkpoint.old")
    (tmp_path / "elsewhere").rename(tmp_path / "checkpoint.tmp")
    state = load_checkpoint(ckpt, model, opt, sched, "fp")
    assert state["step"] == 2  # the .tmp of an unfinished save is never trusted
    # a crash right after rename(tmp → path): path is complete and wins, the stale .old goes away
    import shutil

    (tmp_path / "checkpoint.old").rename(ckpt)
    shutil.copytree(ckpt, tmp_path / "checkpoint.old")
    (tmp_path / "checkpoint.old" / "trainer_state.json").write_text(
        json.dumps({"fingerprint": "fp", "step": 1}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_checkpoint(ckpt, model, opt, sched, "fp")["step"] == 2
    assert not (tmp_path / "checkpoint.old").exists()
    assert first.keys() == _lora(model).keys()
