"""Memory: the peak estimate and its refusal against a faked free memory, gradient checkpointing that
really recomputes, fp16 training through the grad scaler, the QLoRA fallback training plain LoRA."""

from __future__ import annotations

import pytest
from local_peft_helpers import Recorder, make_cfg, make_examples, make_prompt

from ftlab.contract import TrainJob
from ftlab_local_peft.memory import GIB, MemoryEstimateError, check, estimate

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

QWEN_1_5B = {"layers": 28, "hidden": 1536, "intermediate": 8960, "heads": 12, "vocab": 151936}
"""Qwen2.5-1.5B-Instruct's shape (config.json)."""


def qwen(batch=4, seq=512, checkpointing=False, weight_bytes=int(1.54e9 * 4)):
    return estimate(weight_bytes=weight_bytes, trainable=4_358_144, **QWEN_1_5B, batch=batch, seq=seq,
                    act_bytes=2, checkpointing=checkpointing, cuda=True)


def test_estimate_adds_up_and_shrinks_with_each_knob():
    est = qwen()
    assert est.optimizer == 2 * est.trainable == 2 * est.gradients == 2 * 4 * 4_358_144
    assert est.weights == int(1.54e9 * 4)
    assert est.total > est.weights + est.activations
    assert qwen(batch=2).activations < est.activations / 1.9
    assert qwen(seq=256).activations < est.activations / 2
    assert qwen(checkpointing=True).activations < est.activations / 10
    assert qwen(weight_bytes=int(1.54e9 * 0.55)).total < est.total - 5 * GIB  # 4-bit base


def test_refusal_with_a_faked_free_memory_names_the_keys_to_change():
    cfg = make_cfg(train={"batch_size": 8}, prompt={"max_input_tokens": 512})
    est = qwen(batch=8)
    with pytest.raises(MemoryEstimateError) as exc:
        check(est, free_bytes=2 * GIB, device="cuda:0 (Tesla T4)", cfg=cfg)
    msg = str(exc.value)
    for key in ("train.batch_size=4 (now 8", "train.gradient_accumulation_steps", "prompt.max_input_tokens (now 512)",
                "backend.gradient_checkpointing=true", "train.quantization=4bit", "backend.memory_check=false"):
        assert key in msg, key
    assert "cuda:0 (Tesla T4)" in msg and "2.00 GiB free" in msg


def test_enough_or_unknown_free_memory_passes():
    cfg = make_cfg()
    est = qwen()
    check(est, free_bytes=est.beyond_weights, device="cuda:0", cfg=cfg)
    check(est, free_bytes=None, device="xla:0", cfg=cfg)
    with pytest.raises(MemoryEstimateError):
        check(est, free_bytes=est.beyond_weights - 1, device="cuda:0", cfg=cfg)


def _backend(tmp_path, train=None, backend=None, model=None):
    from ftlab_local_peft.backend import LocalPeftBackend

    cfg = make_cfg(train={"max_steps": 4, **(train or {})}, backend=backend, model=model)
    (tmp_path / "run").mkdir(parents=True, exist_ok=True)
    (tmp_path / "out").mkdir(exist_ok=True)
    rec = Recorder(tmp_path / "run")
    return LocalPeftBackend(cfg, rec.ctx), rec, make_prompt(cfg)


def _train(b, prompt, tmp_path, n=16):
    return b.train(TrainJob(train=make_examples(n), eval=(), prompt=prompt, out_dir=tmp_path / "out"))


def test_the_backend_refuses_before_the_first_step(tmp_path, capsys):
    b, rec, prompt = _backend(tmp_path, backend={"memory_limit_gib": 1e-5})
    with pytest.raises(MemoryEstimateError, match="backend.memory_limit_gib=1e-05|train.batch_size"):
        _train(b, prompt, tmp_path)
    assert "memory estimate on cpu" in capsys.readouterr().out
    assert not [r for _, r in rec.rows if "train/loss" in r]  # no step ran
    assert float(rec.tags["local_peft.memory_estimate_gib"]) > 0


def _layer_calls(tmp_path, checkpointing: bool) -> int:
    b, _, prompt = _backend(tmp_path, backend={"gradient_checkpointing": checkpointing})
    b._ensure_loaded(make_examples(16), prompt)
    calls = []
    # its first sub-module: transformers checkpoints a layer's forward (the layer's own hooks run once), and
    # the recomputation stops early once it has what backward needs (a hook late in the layer may not rerun)
    b._base.model.layers[0].input_layernorm.register_forward_hook(lambda *a: calls.append(1))
    result = _train(b, prompt, tmp_path)
    losses = [h["train/loss"] for h in result.history if "train/loss" in h]
    assert losses and all(x == x for x in losses)
    assert not b._base.is_gradient_checkpointing  # switched off again after training
    return len(calls)


def test_gradient_checkpointing_really_recomputes_the_layers(tmp_path):
    micro = 4 * 2  # max_steps x gradient_accumulation_steps
    assert _layer_calls(tmp_path / "plain", False) == micro
    assert _layer_calls(tmp_path / "ckpt", True) == 2 * micro  # forward + recomputation in backward


def test_fp16_trains_through_the_grad_scaler_on_cpu(tmp_path):
    b, rec, prompt = _backend(tmp_path, train={"max_steps": 12, "learning_rate": 1e-2, "logging_steps": 3},
                              backend={"device": "cpu", "dtype": "fp16"})
    assert b.rt.fp16 and b.rt.stepper().scaler is not None
    assert rec.tags["local_peft.dtype"] == "float16" and rec.tags["local_peft.grad_scaler"] == "true"
    losses = [h["train/loss"] for h in _train(b, prompt, tmp_path, 24).history if "train/loss" in h]
    assert len(losses) == 4 and all(x == x for x in losses) and losses[-1] < losses[0], losses


def test_quantization_fallback_trains_plain_lora_and_tags_it(tmp_path):
    b, rec, prompt = _backend(tmp_path, train={"quantization": "4bit", "quantization_fallback": "none"},
                              backend={"device": "cpu"})
    assert b.quantization == "none"
    assert rec.tags["ftlab.fallback.train.quantization"].startswith("4bit → none")
    result = _train(b, prompt, tmp_path)
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
    assert result.metrics["train/trainable_params"] > 0


def test_over_several_ranks_the_activations_are_one_ranks_rows(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from ftlab_local_peft import distributed
    from ftlab_local_peft.loop import Plan
    from ftlab_local_peft.memory import estimate_plan

    b, _, prompt = _backend(tmp_path, train={"batch_size": 8})
    b._ensure_loaded(make_examples(16), prompt)
    plan = Plan(b._base, [40] * 16, None, [p for p in b._base.parameters()][:2])
    session = SimpleNamespace(cfg=b.cfg, rt=b.rt)
    alone = estimate_plan(plan, session)
    monkeypatch.setattr(distributed, "_CURRENT", distributed.Group(rank=0, world=2))
    two = estimate_plan(plan, session)
    monkeypatch.setattr(distributed, "_CURRENT", distributed.Group(rank=0, world=3))
    three = estimate_plan(plan, session)  # 8 rows over 3 ranks: a rank runs at most 3
    assert two.activations * 2 == alone.activations and three.activations * 8 == alone.activations * 3
    assert two.weights == alone.weights and two.optimizer == alone.optimizer
