"""Model-FLOPs utilisation (issue 20): ftlab's frozen forward pass and LoRA training step against the GEMM peak.

On whatever device is present, in the dtype the backend computes in, the achieved model FLOP/s of

- *frozen*: ``frozen.lower_states``, the frozen pass ftlab runs over every prompt (decoder only, no LM
  head, KV cache kept), on random token ids (so no shared prefix is skipped), one batch of B x T;
- *plain*: a plain transformers forward of the same decoder on the same ids (``model.model(ids, mask)``),
  the reference the issue quotes;
- *train*: steps of ftlab's training loop (``loop.fit`` over ``methods.lora``'s plan: target-token loss,
  backward, clipping, AdamW, schedule, logging), batches of B rows of ~T tokens (mtsamples17 training rows
  through the classification prompt, ``prompt.max_input_tokens`` chosen so prompt + label is ~T);

each divided by the peak of a square matmul (``--gemm`` x ``--gemm``) in the same dtype, measured in the
same rounds (the ratio per round, the median round kept; ``*_cpu`` the same by this process's CPU seconds).

Model FLOPs, counted the way PaLM (appendix B) and nanoGPT's ``estimate_mfu`` count them, per sequence of
T real tokens (padding is not counted: it is lost utilisation), N = the decoder's matmul weights (q, k, v,
o, gate, up, down; embeddings are lookups), L layers, d = heads x head_dim, V x H the LM head, n_lora the
LoRA weights:

- forward, no LM head:        2 N T + 4 L d T^2            (QK^T and AV over the full T x T, not halved
                                                            for causality, as PaLM counts)
- LoRA training step:         4 N T + 6 n_lora T + 12 L d T^2 + 4 V H t
  (frozen weights: forward + input-gradient backward, no weight gradient; adapters: forward + both
  gradients; attention: forward + backward as PaLM; the LM head runs only at the t target positions,
  forward + input gradient). Gradient checkpointing's recomputation would not count (MFU, not HFU).

A short torch.profiler table follows (self CPU time by kind: matmuls, attention, dtype casts, the rest),
to show where the time that is not matmul goes.

    python benchmarks/bench_mfu.py            # SmolLM2-135M, batch 4 x 512 tokens, dtype auto and float32
    python benchmarks/bench_mfu.py --quick    # tiny random model, batch 2 x 128, auto only (seconds)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import machine_line, result  # noqa: E402  (this folder)


class Clock:
    """Wall and CPU seconds of a block (synchronising the device at both ends)."""

    def __init__(self, device):
        self.device = device

    def now(self) -> tuple[float, float]:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter(), time.process_time()

    def run(self, fn) -> tuple[float, float]:
        w0, c0 = self.now()
        fn()
        w1, c1 = self.now()
        return w1 - w0, c1 - c0


def gemm_peak(n: int, dtype, device, clock: Clock, budget_s: float) -> tuple[float, float]:
    """(FLOP/s by wall, by CPU time) of ``n x n @ n x n`` matmuls repeated for about ``budget_s``."""
    import torch

    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    c = torch.mm(a, b)
    reps, w, cpu = 0, 0.0, 0.0
    while w < budget_s or reps < 3:
        dw, dc = clock.run(lambda: torch.mm(a, b, out=c))
        reps, w, cpu = reps + 1, w + dw, cpu + dc
    return 2 * n ** 3 * reps / w, 2 * n ** 3 * reps / max(cpu, 1e-9)


class Counts:
    """The model's shape, for the FLOP formulas in the module docstring."""

    def __init__(self, model):
        import torch

        from ftlab_local_peft.modeling import decoder, unwrap

        cfg = unwrap(model).config
        self.layers = cfg.num_hidden_layers
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.d_attn = cfg.num_attention_heads * head_dim
        self.n = sum(m.weight.numel() for name, m in decoder(model).layers.named_modules()
                     if isinstance(m, torch.nn.Linear) and "lora_" not in name)
        self.head = cfg.vocab_size * cfg.hidden_size

    def forward(self, lengths) -> float:
        return sum(2 * self.n * t + 4 * self.layers * self.d_attn * t * t for t in lengths)

    def train(self, lengths, n_lora: int, targets: int) -> float:
        return sum(4 * self.n * t + 6 * n_lora * t + 12 * self.layers * self.d_attn * t * t
                   for t in lengths) + 4 * self.head * targets


def compose_cfg(over):
    from ftlab.config.compose import compose, validate

    return validate(compose(over))


def training_rows(b, cfg, seq: int, rows: int):
    """mtsamples17 training rows whose prompt + label is ~``seq`` tokens (long inputs, cut to fit)."""
    from ftlab.data import load_data
    from ftlab.prompt import make_prompt
    from ftlab_local_peft import encoding

    data = load_data(cfg.data, cfg.eval.splits, need_train=True)
    pool = data.splits["train"].examples[:200]
    prompt = make_prompt(cfg.prompt, cfg.data.labels)
    b._ensure_loaded(pool, prompt)
    tok = b._tok
    overhead = len(encoding.prompt_ids(tok, prompt, "")) + 4  # the template, the chat wrapping, a label
    cfg.prompt.max_input_tokens = max(8, seq - overhead)
    prompt = make_prompt(cfg.prompt, cfg.data.labels)
    long = [ex for ex in pool if len(tok(ex.text, add_special_tokens=False)["input_ids"]) > cfg.prompt.max_input_tokens]
    if len(long) < rows:
        raise SystemExit(f"only {len(long)} training rows longer than {cfg.prompt.max_input_tokens} tokens")
    return tuple(long[:rows]), prompt


def profile_table(fn, label: str) -> None:
    """Self CPU time of ``fn()`` by kind of op (matmul, attention, casts and copies, the rest)."""
    from torch.profiler import ProfilerActivity, profile

    w0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    wall = time.perf_counter() - w0
    kinds = {"matmul": 0.0, "attention": 0.0, "casts/copies": 0.0, "other ops": 0.0}
    top = []
    for ev in prof.key_averages():
        t = ev.self_cpu_time_total / 1e6
        k = ev.key.lower()
        kind = ("attention" if "attention" in k or "sdpa" in k else
                "matmul" if any(x in k for x in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "linear")) else
                "casts/copies" if any(x in k for x in ("copy_", "aten::to", "_to_copy", "contiguous", "clone")) else
                "other ops")
        kinds[kind] += t
        top.append((t, ev.key, ev.count))
    ops = sum(kinds.values())
    print(f"  profile of {label}: {wall:.2f} s wall under the profiler, ops' self CPU {ops:.2f} s "
          f"(over all threads' ops, summed)")
    print("    " + ", ".join(f"{k} {v / max(ops, 1e-9):.0%}" for k, v in kinds.items()))
    for t, key, count in sorted(top, reverse=True)[:6]:
        print(f"    {t:7.3f} s  {count:6d}x  {key}")


def measure(label: str, over: list[str], batch: int, seq: int, rounds: int, gemm: int, budget_s: float,
            target: str, profile: bool) -> bool:
    """Print and RESULT one dtype's figures; returns whether it ran in bf16."""
    import torch

    from ftlab.contract import RunContext, TrainJob
    from ftlab_local_peft import frozen, loop, methods
    from ftlab_local_peft.device import autocast
    from ftlab_local_peft.encoding import make_features
    from ftlab_local_peft.inference import left_pad
    from ftlab_local_peft.methods import lora
    from ftlab_local_peft.modeling import decoder, split_layer

    marks: list[tuple[float, float]] = []
    clock_box: list[Clock] = []
    ctx = RunContext(run_dir=Path(tempfile.mkdtemp(prefix="ftlab-mfu-")),
                     log_metrics=lambda m, step=None: marks.append(clock_box[0].now()))
    cfg = compose_cfg(over)
    from ftlab.plugins import get_plugins

    b = get_plugins().backend(cfg.backend.name).factory(cfg, ctx)
    rt = b.rt
    clock = Clock(rt.device)
    clock_box.append(clock)
    rows, prompt = training_rows(b, cfg, seq, batch * (rounds + 1) * 2)
    base, tok = b._base, b._tok
    counts = Counts(base)
    dtype = torch.bfloat16 if rt.bf16 else torch.float32
    dname = "bf16" if rt.bf16 else "fp32"

    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(10, len(tok), (seq,), generator=g).tolist() for _ in range(batch)]
    k = split_layer(base, cfg.backend.train_layers)
    pad_ids, mask = left_pad(ids, b.pad_id, rt.device)

    def ftlab_frozen():
        frozen.lower_states(base, ids, k, cfg.backend.adapted_tokens, b.pad_id, rt, batch)

    def plain():
        with torch.inference_mode(), autocast(rt.device, rt.bf16):
            decoder(base)(input_ids=pad_ids, attention_mask=mask)

    # the training plan, as loop.train builds it (seeded, a fresh adapter), with the loss recording its batches
    loop.seed_everything(cfg.train.seed)
    session = methods.Session(base, tok, cfg, ctx, rt, b.pad_id, b.end_id, b.features)
    job = TrainJob(train=rows, eval=(), prompt=prompt, out_dir=Path(tempfile.mkdtemp(prefix="ftlab-mfu-")))
    plan = lora.prepare(session, job)
    n_lora = sum(p.numel() for p in plan.params)
    feats = dict(enumerate(make_features(tok, prompt, rows, b.end_id)))  # as lora.prepare builds them
    seen: list[list[int]] = []
    loss = plan.loss

    def recording_loss(idx):
        seen.append(list(idx))
        return loss(idx)

    plan.loss = recording_loss
    steps_per_fit = 3

    def fit():
        marks.clear()
        seen.clear()
        cfg.train.max_steps = steps_per_fit
        loop.fit(plan, job, cfg, ctx, rt)
        out = []
        for i in range(1, len(marks)):  # step i's time: from the end of step i-1 to the end of step i
            idx = seen[i]
            lens = [len(feats[j]) for j in idx]
            padded = len(idx) * max(lens)
            tgt = sum(sum(1 for x in feats[j].labels if x >= 0) for j in idx)
            out.append((counts.train(lens, n_lora, tgt), marks[i][0] - marks[i - 1][0],
                        marks[i][1] - marks[i - 1][1], sum(lens) / padded))
        return out

    fwd_flops = counts.forward([seq] * batch)
    print(f"[{label}] {cfg.model.name} in {dname} ({b.dtype_reason}) on {rt.device}: N = {counts.n / 1e6:.1f} M "
          f"matmul weights in {counts.layers} layers, d_attn {counts.d_attn}, LoRA {n_lora / 1e6:.2f} M "
          f"(r={cfg.train.lora.r}, {list(cfg.train.lora.target_modules)}); batch {batch} x {seq} tokens; "
          f"forward {fwd_flops / 1e9:.0f} GFLOP of which attention {1 - 2 * counts.n * seq * batch / fwd_flops:.0%}")
    ftlab_frozen(), plain(), fit()  # warm-up: first-call set-up, allocator, kernels
    per: dict[str, list[tuple[float, float]]] = {"frozen": [], "plain": [], "train": []}
    best: dict[str, float] = {"peak": 0.0, "frozen": 0.0, "plain": 0.0, "train": 0.0}
    fill: list[float] = []
    for r in range(rounds):
        pw, pc = gemm_peak(gemm, dtype, rt.device, clock, budget_s)
        best["peak"] = max(best["peak"], pw)
        for name, fn in (("frozen", ftlab_frozen), ("plain", plain)):
            w, c = clock.run(fn)
            per[name].append((fwd_flops / w / pw, fwd_flops / c / pc))
            best[name] = max(best[name], fwd_flops / w)
        steps = fit()
        fl, w, c = sum(s[0] for s in steps), sum(s[1] for s in steps), sum(s[2] for s in steps)
        fill += [s[3] for s in steps]
        per["train"].append((fl / w / pw, fl / c / pc))
        best["train"] = max(best["train"], fl / w)
        print(f"  round {r + 1}: {dname} peak {pw / 1e9:.0f} GFLOP/s; frozen {per['frozen'][-1][0]:.2f}, "
              f"plain {per['plain'][-1][0]:.2f}, train step {per['train'][-1][0]:.2f} of it "
              f"({w / len(steps):.2f} s/step); load {os.getloadavg()[0]:.1f}")
    print(f"  best of {rounds} rounds: peak {best['peak'] / 1e9:.0f}, frozen {best['frozen'] / 1e9:.0f}, plain "
          f"{best['plain'] / 1e9:.0f}, train {best['train'] / 1e9:.0f} GFLOP/s; training batches "
          f"{statistics.mean(fill):.1%} real tokens (the rest padding)")
    suffix = "" if label == "chosen" else f"_{label}"
    result(f"gemm_peak_gflops_{dname}", best["peak"] / 1e9, "GFLOP/s")
    for name in ("frozen", "plain", "train"):
        med = statistics.median(x[0] for x in per[name])
        tgt = target if name != "plain" else ""
        result(f"mfu_{name}{suffix}", med, "fraction", tgt)
        result(f"mfu_{name}_cpu{suffix}", statistics.median(x[1] for x in per[name]), "fraction")
    if profile:
        profile_table(ftlab_frozen, f"the frozen pass ({dname})")
        profile_table(lambda: (cfg.train.__setattr__("max_steps", 1), loop.fit(plan, job, cfg, ctx, rt)),
                      f"one training step ({dname})")
    return rt.bf16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny random model, batch 2 x 128, auto dtype only")
    ap.add_argument("--batch", type=int, default=None, help="rows per pass (default 4; quick 2)")
    ap.add_argument("--seq", type=int, default=None, help="tokens per row (default 512; quick 128)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds, median kept (default 3; quick 2)")
    ap.add_argument("--gemm", type=int, default=2048, help="side of the square matmul for the peak")
    ap.add_argument("--no-float32", action="store_true", help="only the dtype backend.dtype=auto picks")
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()
    batch, seq = args.batch or (2 if args.quick else 4), args.seq or (128 if args.quick else 512)
    rounds = args.rounds or (2 if args.quick else 3)
    print(machine_line())
    over = ["backend.progress=false", "train.method=lora", f"train.batch_size={batch}",
            "train.gradient_accumulation_steps=1", "train.logging_steps=1", "train.eval_loss=false",
            "backend.checkpoint_steps=0"]
    if args.quick:
        over.append("model=tiny_random")
    target = "" if args.quick else ">=0.7"
    bf16 = measure("chosen", over + ["backend.dtype=auto"], batch, seq, rounds, args.gemm,
                   0.2 if args.quick else 1.0, target, not args.no_profile)
    if bf16 and not args.quick and not args.no_float32:
        measure("fp32", over + ["backend.dtype=float32"], batch, seq, rounds, args.gemm, 1.0, target, False)


if __name__ == "__main__":
    sys.exit(main())
