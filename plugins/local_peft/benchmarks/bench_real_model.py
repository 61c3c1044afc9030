"""Real-model timings (SmolLM2-135M GGUF by default): load, score_labels and generate per example,
and a LoRA training step, each with and without bf16 autocast in the same run.

    python plugins/local_peft/benchmarks/bench_real_model.py [-n 6] [--steps 4] [--tiny]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import context, load_examples, make_cfg  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=6, help="examples per prediction mode")
    ap.add_argument("--steps", type=int, default=4, help="training steps (the first is warm-up)")
    ap.add_argument("--batch-size", type=int, default=4, help="training batch size")
    ap.add_argument("--max-input-tokens", type=int, default=256)
    ap.add_argument("--tiny", action="store_true", help="tiny random model instead of SmolLM2")
    args = ap.parse_args()

    from ftlab.contract import Decoding, TrainJob
    from ftlab.prompt import make_prompt
    from ftlab_local_peft import encoding
    from ftlab_local_peft.backend import LocalPeftBackend

    examples, labels = load_examples(args.n)
    train_ex, _ = load_examples(args.batch_size * args.steps, "train")
    cfg = make_cfg(not args.tiny, labels, backend={"progress": False, "checkpoint_steps": 0},
                   prompt={"max_input_tokens": args.max_input_tokens},
                   train={"max_steps": args.steps, "batch_size": args.batch_size, "logging_steps": 1})
    prompt = make_prompt(cfg.prompt, labels)
    ctx = context()
    b = LocalPeftBackend(cfg, ctx)
    t0 = time.perf_counter()
    b._ensure_loaded(examples + train_ex, prompt)
    print(f"{cfg.model.name}: load {time.perf_counter() - t0:.1f} s (tokenizer + model, fp32)")
    ref = b.base_model()
    b.predict(ref, examples[:1], prompt, Decoding())  # warm-up
    rt = b.rt
    rows = {}
    for bf16 in (False, True):
        b.rt = replace(rt, bf16=bf16)
        for mode, dec in (("score_labels", Decoding(batch_size=1)),
                          ("generate", Decoding(mode="generate", max_new_tokens=16, batch_size=1))):
            p = b.predict(ref, examples, prompt, dec)
            rows[(mode, bf16)] = p.metrics["time/predict_s_per_example"]
        stamps = []
        ctx.log_metrics = lambda m, step=None: stamps.append(time.perf_counter())
        out = ctx.run_dir / f"train-bf16-{bf16}"
        out.mkdir()
        res = b.train(TrainJob(train=train_ex, eval=(), prompt=prompt, out_dir=out))
        diffs = [y - x for x, y in zip(stamps, stamps[1:])]
        rows[("train_step", bf16)] = statistics.median(diffs) if diffs else res.metrics["time/train_s"]
        rows[("tokens_per_s", bf16)] = res.metrics["train/tokens_per_s"]
    mean_prompt = statistics.mean(len(encoding.prompt_ids(b._tok, prompt, e.text)) for e in examples)
    print(f"max_input_tokens={args.max_input_tokens} (~{mean_prompt:.0f} prompt tokens), {len(labels)} labels, "
          f"LoRA r={cfg.train.lora.r} {list(cfg.train.lora.target_modules)}, batch {args.batch_size}")
    for key, unit in (("score_labels", "s/example"), ("generate", "s/example"), ("train_step", "s/step")):
        a, c = rows[(key, False)], rows[(key, True)]
        print(f"{key:13s} fp32 {a:.3f} {unit} vs bf16 autocast {c:.3f} {unit} ({a / c:.2f}x)")
    print(f"train tokens/s fp32 {rows[('tokens_per_s', False)]:.0f} vs bf16 {rows[('tokens_per_s', True)]:.0f}")


if __name__ == "__main__":
    main()
