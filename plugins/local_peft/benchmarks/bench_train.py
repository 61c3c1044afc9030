"""Training (issue 8, target 2): ftlab's own LoRA loop against a plain transformers ``Trainer`` + peft script
(trainer_baseline.py), same model, rows, LoRA config, batch, accumulation, schedule, sequence length and
dtype, in the same run.

1. Like for like: ``backend.train`` with ``train.method=lora`` and ``backend.group_by_length=false``, fed the
   very batches the Trainer gets (ftlab's seeded epoch order is handed to Trainer's sequential sampler),
   so both process the same tokens. Ratio of tokens/s, each loop timed by its own clock (Trainer's
   ``train_runtime``, ftlab's ``time/train_s``), target >= 1.0. Both loss curves are printed side by side.
   The rows are chosen with targets of one token length: ftlab's loss is the mean over examples of each
   example's mean label-token loss, Trainer's the mean over all label tokens of a step; with equal target
   lengths (and full batches) the two definitions are the same number, so the curves must agree up to
   what differs by construction: the LoRA dropout masks (each loop draws its own) and float summation
   order. Step 1 (B = 0, dropout has no effect) must agree to float precision; later steps within the
   tolerance printed (5 %: dropout 0.05 on a few hundred tokens per step moves a step's loss by ~1 %).
2. ftlab's CPU defaults: ``train.method=lora`` with length-grouped batches, and ``train.method=lora_cls``
   (frozen context encoded once, only ``backend.adapted_tokens`` tokens through the LoRA layers), dtype
   auto, same rows and number of epochs. Time per epoch vs the Trainer's; the lora_cls time is the whole
   ``backend.train`` call (its one-off context encoding included), target >= 1.5.

Needs: the real model (full run); quiet cores for the absolute figures (the ratios are same-run).

    python plugins/local_peft/benchmarks/bench_train.py            # SmolLM2-135M, 32 rows, 8 steps (2 epochs)
    python plugins/local_peft/benchmarks/bench_train.py --quick    # tiny random model, 8 rows, 4 steps
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import context, load_examples, machine_line, make_cfg, result, timed  # noqa: E402
from trainer_baseline import Settings, feature_rows, train as trainer_train  # noqa: E402

LOSS_TOLERANCE = 0.05
"""Largest relative loss difference allowed per step (dropout masks differ between the two loops)."""
FIRST_STEP_TOLERANCE = 0.01
"""Step 1: same weights, same batch, no LoRA contribution yet; only float summation order differs
(bf16 autocast rounds to ~3 significant digits, hence not 1e-5)."""


def equal_length_rows(b, prompt, n: int, pool: int):
    """The first ``n`` training rows whose target (label tokens + end) has the most common token length."""
    from ftlab_local_peft import encoding

    examples, _ = load_examples(pool, "train")
    tlen = {ex.id: len(encoding.label_ids(b._tok, ex.label, b.end_id)) for ex in examples}
    common, _ = collections.Counter(tlen.values()).most_common(1)[0]
    rows = tuple(ex for ex in examples if tlen[ex.id] == common)[:n]
    if len(rows) < n:
        raise SystemExit(f"only {len(rows)} of the first {pool} training rows have {common}-token targets")
    return rows, common


def run_ftlab(b, cfg, rows, prompt):
    """``backend.train`` with ``cfg``; (TrainedModel, wall seconds, CPU seconds of the call)."""
    from ftlab.contract import TrainJob

    b.cfg = cfg
    out = Path(tempfile.mkdtemp(prefix="ftlab-bench-train-"))
    res = []
    wall, cpu = timed(lambda: res.append(b.train(TrainJob(train=rows, eval=(), prompt=prompt, out_dir=out))))
    return res[0], wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny random model, 8 rows, 4 steps")
    ap.add_argument("--rows", type=int, default=None, help="training rows (default 32; quick 8)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 4 (quick 2)")
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2, help="passes over the rows (sets max_steps)")
    args = ap.parse_args()
    n = args.rows or (8 if args.quick else 32)
    bs = args.batch_size or (2 if args.quick else 4)
    ga = args.grad_accum
    if n % (bs * ga):
        raise SystemExit("--rows must be a multiple of batch size x accumulation (full batches only)")
    steps = args.epochs * n // (bs * ga)

    from ftlab.prompt import make_prompt
    from ftlab_local_peft.backend import LocalPeftBackend
    from ftlab_local_peft.loop import epoch_batches

    _, labels = load_examples(1)
    base_train = {"method": "lora", "batch_size": bs, "gradient_accumulation_steps": ga,
                  "learning_rate": 3e-4, "lr_scheduler": "linear", "warmup_ratio": 0.05,
                  "max_steps": steps, "logging_steps": 1, "seed": 42}
    common_backend = {"progress": False, "checkpoint_steps": 0}
    cfg_like = make_cfg(not args.quick, labels, backend={**common_backend, "group_by_length": False},
                        train=base_train)
    prompt = make_prompt(cfg_like.prompt, labels)
    b = LocalPeftBackend(cfg_like, context())
    pool, _ = load_examples(400, "train")
    b._ensure_loaded(pool, prompt)  # tiny: the tokenizer is trained on these rows
    rows, tlen = equal_length_rows(b, prompt, n, 400)
    b._tok.padding_side = "right"
    feats = feature_rows(b._tok, prompt, rows, b.end_id)
    lengths = [len(f["input_ids"]) for f in feats]
    n_batches = n // bs
    order = [i for e in range(args.epochs) for batch in epoch_batches(lengths, bs, 42, e, False) for i in batch]
    lr = cfg_like.train.lora
    s = Settings(batch_size=bs, grad_accum=ga, learning_rate=3e-4, lr_scheduler="linear", warmup_ratio=0.05,
                 max_steps=steps, max_grad_norm=cfg_like.backend.max_grad_norm, r=lr.r, alpha=lr.alpha,
                 dropout=lr.dropout, target_modules=tuple(lr.target_modules), bf16=b.rt.bf16, seed=42)
    print(machine_line())
    print(f"{cfg_like.model.name}: {n} training rows with {tlen}-token targets (prompt + target "
          f"{min(lengths)}-{max(lengths)} tokens, mean {sum(lengths) / n:.0f}; max_input_tokens="
          f"{cfg_like.prompt.max_input_tokens}), batch {bs} x accumulation {ga}, {steps} steps = {args.epochs} "
          f"epochs, lr 3e-4 linear warm-up 0.05, LoRA r={s.r} alpha={s.alpha} dropout={s.dropout} "
          f"{list(s.target_modules)}, dtype {b.dtype_name} ({b.dtype_reason})")

    # a short warm-up forward so that neither loop pays first-call kernel selection alone
    import torch

    from ftlab_local_peft.device import autocast

    with torch.inference_mode(), autocast(b.rt.device, b.rt.bf16):
        b._base(input_ids=torch.tensor([feats[0]["input_ids"]], device=b.rt.device))

    trs = []
    _, tr_cpu = timed(lambda: trs.append(trainer_train(b._base, b._tok, feats, s, order=order)))
    tr = trs[0]
    tr.model.unload()  # the base model back, without LoRA layers, for ftlab's runs
    tr_tps = tr.tokens / tr.runtime_s
    print(f"\nTrainer + peft     train_runtime {tr.runtime_s:7.1f} s (call {tr.wall_s:.1f} s, cpu {tr_cpu:.1f} s), {tr.tokens} tokens, "
          f"{tr_tps:.0f} tokens/s, {tr.runtime_s / args.epochs:.1f} s/epoch")

    like, like_wall, like_cpu = run_ftlab(b, cfg_like, rows, prompt)
    f_s, f_tps = like.metrics["time/train_s"], like.metrics["train/tokens_per_s"]
    f_tokens = f_tps * f_s
    print(f"ftlab lora (same batches) time/train_s {f_s:7.1f} s (call {like_wall:.1f} s, cpu {like_cpu:.1f} s), {f_tokens:.0f} tokens, "
          f"{f_tps:.0f} tokens/s, {f_s / args.epochs:.1f} s/epoch")
    if abs(f_tokens - tr.tokens) > 0.01 * tr.tokens:
        print(f"WARNING: the loops processed different token counts ({f_tokens:.0f} vs {tr.tokens})")
    result("train_vs_trainer", f_tps / tr_tps, "ratio", ">=1.0")
    result("train_vs_trainer_cpu", tr_cpu / like_cpu, "ratio")  # CPU seconds of the whole calls
    result("train_tokens_per_s_trainer", tr_tps, "tokens/s")
    result("train_tokens_per_s_ftlab", f_tps, "tokens/s")

    ft_loss = [h["train/loss"] for h in like.history if "train/loss" in h]
    print(f"\nloss per optimizer step (equal-length targets: same definition; tolerance {LOSS_TOLERANCE:.0%}, "
          f"step 1 {FIRST_STEP_TOLERANCE:.0%})\n step   Trainer     ftlab   rel.diff")
    rel = []
    for i, (x, y) in enumerate(zip(tr.losses, ft_loss), 1):
        rel.append(abs(x - y) / max(abs(x), 1e-12))
        print(f" {i:4d} {x:9.4f} {y:9.4f} {rel[-1]:9.2%}")
    if len(tr.losses) != len(ft_loss):
        print(f"WARNING: {len(tr.losses)} Trainer steps logged vs {len(ft_loss)} ftlab steps")
    result("train_loss_step1_rel_diff", rel[0], "fraction", f"<={FIRST_STEP_TOLERANCE}")
    result("train_loss_max_rel_diff", max(rel), "fraction", f"<={LOSS_TOLERANCE}")

    # ftlab's CPU defaults: length grouping on, dtype auto, and lora_cls
    from omegaconf import OmegaConf

    def with_(train=None, backend=None):
        d = OmegaConf.structured(cfg_like)
        return OmegaConf.to_object(OmegaConf.merge(d, {"train": train or {}, "backend": {
            "group_by_length": True, **(backend or {})}}))

    tokens_per_epoch = sum(lengths)
    print(f"\nftlab CPU defaults, same {n} rows, {args.epochs} epochs (tokens/s = {tokens_per_epoch} prompt+target "
          f"tokens per epoch / wall of the call, so every line counts the same work)")
    tr_epoch = tr.runtime_s / args.epochs
    print(f"Trainer + peft      {tr_epoch:7.1f} s/epoch   {tokens_per_epoch / tr_epoch:7.0f} tokens/s")
    grouped, g_wall, g_cpu = run_ftlab(b, with_(), rows, prompt)
    g_epoch = grouped.metrics["time/train_s"] / args.epochs
    print(f"ftlab lora grouped  {g_epoch:7.1f} s/epoch   {tokens_per_epoch / g_epoch:7.0f} tokens/s "
          f"({tr_epoch / g_epoch:.2f}x Trainer; loop time, call {g_wall:.1f} s)")
    result("train_lora_grouped_vs_trainer", tr_epoch / g_epoch, "ratio")
    cls, c_wall, c_cpu = run_ftlab(b, with_(train={"method": "lora_cls"}), rows, prompt)
    c_epoch = c_wall / args.epochs
    print(f"ftlab lora_cls      {c_epoch:7.1f} s/epoch   {tokens_per_epoch / c_epoch:7.0f} tokens/s "
          f"({tr_epoch / c_epoch:.2f}x Trainer; whole call incl. the frozen-context encoding, loop alone "
          f"{cls.metrics['time/train_s']:.1f} s; adapted_tokens={b.cfg.backend.adapted_tokens})")
    result("train_defaults_vs_trainer", tr_epoch / c_epoch, "ratio", ">=1.5")
    result("train_defaults_vs_trainer_cpu", tr_cpu / c_cpu, "ratio")  # CPU seconds of the whole calls
    result("train_lora_cls_s_per_epoch", c_epoch, "s")
    result("train_trainer_s_per_epoch", tr_epoch, "s")


if __name__ == "__main__":
    main()
