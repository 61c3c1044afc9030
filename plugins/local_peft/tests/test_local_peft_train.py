"""Training: loss goes down, adapter saved and reloadable, metrics logged, resume is exact."""

from __future__ import annotations

from pathlib import Path

import pytest
from local_peft_helpers import Recorder, make_cfg, make_examples, make_prompt

from ftlab.contract import Decoding, TrainJob

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def test_training_reduces_loss(trained):
    losses = [h["train/loss"] for h in trained.result.history if "train/loss" in h]
    assert len(losses) == 6  # 60 steps, logging every 10
    assert losses[-1] < 0.6 * losses[0], losses
    evals = [h["train/eval_loss"] for h in trained.result.history if "train/eval_loss" in h]
    assert evals and evals[-1] < losses[0]


def test_metrics_and_logging(trained):
    m = trained.result.metrics
    assert m["time/train_s"] > 0 and m["train/tokens_per_s"] > 0
    assert m["train/trainable_params"] > 0
    logged = [(step, row) for step, row in trained.recorder.rows if "train/loss" in row]
    assert [s for s, _ in logged] == [10, 20, 30, 40, 50, 60]
    assert all("train/learning_rate" in row for _, row in logged)


def test_adapter_saved(trained):
    ref = trained.result.model
    assert (ref.backend, ref.kind) == ("local_peft", "tuned")
    adapter = Path(ref.uri)
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "adapter_config.json").is_file()
    assert trained.result.artifacts == (str(adapter),)
    assert not (trained.out_dir / "checkpoint").exists()  # removed after a finished run


def test_tuned_beats_chance(trained):
    preds = trained.backend.predict(trained.result.model, trained.eval_ex, trained.prompt, Decoding())
    correct = sum(p.raw_text == ex.label for p, ex in zip(preds.items, trained.eval_ex))
    assert correct >= 6  # 12 examples, 4 labels: chance is 3


def test_new_instance_reloads_tuned_ref(trained, tmp_path):
    from ftlab_local_peft.backend import LocalPeftBackend

    ref = trained.result.model
    fresh = LocalPeftBackend(trained.cfg, Recorder(tmp_path).ctx)  # another run dir: tokenizer from adapter
    for dec in (Decoding(batch_size=5), Decoding(mode="generate", max_new_tokens=6, batch_size=5)):
        a = trained.backend.predict(ref, trained.eval_ex, trained.prompt, dec)
        b = fresh.predict(ref, trained.eval_ex, trained.prompt, dec)
        assert [p.raw_text for p in a.items] == [p.raw_text for p in b.items]
        for pa, pb in zip(a.items, b.items):
            if pa.scores:
                assert pa.scores == pytest.approx(pb.scores, abs=1e-4)


def test_base_predictions_unchanged_by_training(trained):
    after = trained.backend.predict(trained.backend.base_model(), trained.eval_ex, trained.prompt,
                                    Decoding(batch_size=4))
    for a, b in zip(trained.base_before.items, after.items):
        assert a.scores == pytest.approx(b.scores, abs=1e-4)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_resume_matches_uninterrupted_run(tmp_path, dtype):
    """fp16 too: the grad scaler's state is in the checkpoint, so the resumed steps scale as the
    uninterrupted ones did."""
    import torch
    from safetensors.torch import load_file

    from ftlab_local_peft.backend import LocalPeftBackend

    train = {"max_steps": 6, "logging_steps": 1, "lora": {"r": 4, "alpha": 8, "dropout": 0.1,
                                                          "target_modules": ["q_proj", "v_proj"]}}
    cfg = make_cfg(train=train, backend={"checkpoint_steps": 3, "device": "cpu", "dtype": dtype})
    prompt = make_prompt(cfg)
    ex = make_examples(16)

    def run(name, ctx_factory):
        out = tmp_path / name
        out.mkdir(exist_ok=True)
        rec = ctx_factory(tmp_path / f"{name}-run")
        return LocalPeftBackend(cfg, rec.ctx).train(TrainJob(train=ex, eval=(), prompt=prompt, out_dir=out))

    def recorder(path):
        path.mkdir(exist_ok=True)
        return Recorder(path)

    full = run("full", recorder)

    def crashing(path):
        rec = recorder(path)

        def log(metrics, step=None):
            if step == 5:
                raise Interrupt
        rec.ctx.log_metrics = log
        return rec

    with pytest.raises(Interrupt):
        run("resumed", crashing)
    assert (tmp_path / "resumed" / "checkpoint" / "state.pt").is_file()
    blob = torch.load(tmp_path / "resumed" / "checkpoint" / "state.pt", weights_only=True)
    assert ("scaler" in blob) == (dtype == "fp16")
    resumed = run("resumed", recorder)
    assert resumed.metrics["train/resumed_from_step"] == 3
    wa = load_file(str(Path(full.model.uri) / "adapter_model.safetensors"))
    wb = load_file(str(Path(resumed.model.uri) / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] - wb[k]).abs().max() < 1e-6, k
    assert [h["train/loss"] for h in full.history] == pytest.approx(
        [h["train/loss"] for h in resumed.history], abs=1e-6)


def test_train_layers_adapts_only_the_top_layers(tmp_path):
    """``backend.train_layers`` for the generative ``lora`` method: LoRA weights exist only in the top
    layers (the tiny model has 2: ``train_layers=1`` adapts layer 1), and they are trained."""
    from safetensors.torch import load_file

    from ftlab_local_peft.backend import LocalPeftBackend

    train = {"method": "lora", "max_steps": 8, "logging_steps": 1, "learning_rate": 3e-3,
             "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}
    cfg = make_cfg(train=train, backend={"train_layers": 1})
    rec = Recorder(tmp_path / "run")
    result = LocalPeftBackend(cfg, rec.ctx).train(
        TrainJob(train=make_examples(16), eval=(), prompt=make_prompt(cfg), out_dir=tmp_path / "out"))
    weights = load_file(str(Path(result.model.uri) / "adapter_model.safetensors"))
    layers = {int(k.split(".layers.")[1].split(".")[0]) for k in weights}
    assert layers == {1}, sorted(weights)
    assert any(float(w.abs().sum()) > 0 for k, w in weights.items() if "lora_B" in k)  # B starts at zero


def test_checkpoint_restores_the_grad_scaler(tmp_path):
    """A scale the run had lowered (overflows) and its growth tracker come back on resume, not 65,536."""
    import torch

    from ftlab_local_peft.checkpoint import load_checkpoint, save_checkpoint

    model = _tiny_peft()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cpu")
    scaler.load_state_dict({"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                            "growth_interval": 2000, "_growth_tracker": 7})
    save_checkpoint(tmp_path / "ckpt", model, opt, sched, {"fingerprint": "f", "step": 3}, scaler)
    fresh = torch.amp.GradScaler("cpu")
    assert load_checkpoint(tmp_path / "ckpt", model, opt, sched, "f", fresh)["step"] == 3
    assert fresh.get_scale() == 1024.0 and fresh._get_growth_tracker() == 7
    plain = torch.amp.GradScaler("cpu")  # a checkpoint without a scaler (fp32/bf16) leaves it alone
    save_checkpoint(tmp_path / "ckpt32", model, opt, sched, {"fingerprint": "f", "step": 3})
    load_checkpoint(tmp_path / "ckpt32", model, opt, sched, "f", plain)
    assert plain.state_dict() == torch.amp.GradScaler("cpu").state_dict()


def _tiny_peft():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    return get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=2, target_modules=["q_proj"]))
