"""Compute dtype (issue 8, target 3): float32 vs bf16 autocast on the real model, in the same run.

Prints prefill tokens/s in each dtype and their ratio (a plain batched prefill of whole eval prompts, rounds
interleaved fp32/bf16, median kept), the top-1 agreement of ``score_labels`` between the two dtypes on the
same eval rows, and what ``backend.dtype=auto`` chose on this machine with its reason
(``dtype_probe.choose_dtype``; its cached probe result and a fresh 1-second probe are both shown).
``dtype_auto_ok`` is 1 when the choice agrees with the measured prefill: bf16 chosen and faster, or float32
chosen and bf16 not at least ``dtype_probe.MIN_SPEEDUP`` x faster. Needs quiet cores: bf16 speed depends on
the CPU (AVX-512 BF16/AMX), so run it on the machine whose numbers you want.

    python plugins/local_peft/benchmarks/bench_dtype.py            # SmolLM2-135M, 64 eval rows
    python plugins/local_peft/benchmarks/bench_dtype.py --quick    # tiny random model, 8 rows
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import context, load_examples, machine_line, make_cfg, prefill, result, timed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny random model, 8 rows (seconds)")
    ap.add_argument("-n", type=int, default=None, help="eval rows for top-1 agreement (default 64; quick 8)")
    ap.add_argument("--prefill-rows", type=int, default=16, help="eval rows timed for prefill tokens/s")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved prefill rounds per dtype (median kept)")
    args = ap.parse_args()
    n = args.n or (8 if args.quick else 64)

    import torch

    from ftlab.contract import Decoding
    from ftlab.machine import cpu_info
    from ftlab.prompt import make_prompt
    from ftlab_local_peft import dtype_probe, encoding
    from ftlab_local_peft.backend import LocalPeftBackend

    examples, labels = load_examples(n)
    cfg = make_cfg(not args.quick, labels, backend={"progress": False}, train={"method": "lora"})
    prompt = make_prompt(cfg.prompt, labels)
    b = LocalPeftBackend(cfg, context())  # dtype=auto: the backend's own choice, as a run makes it
    b._ensure_loaded(examples, prompt)
    ref, net = b.base_model(), b._model_for(b.base_model())[0]
    prompts = [encoding.prompt_ids(b._tok, prompt, ex.text) for ex in examples]
    timed_prompts = prompts[:args.prefill_rows]
    tokens = sum(map(len, timed_prompts))
    print(machine_line())
    print(f"{cfg.model.name}: {len(timed_prompts)} prompts timed ({tokens} tokens, batch {args.batch_size}), "
          f"{len(examples)} rows scored in each dtype")

    fp32, bf16 = replace(b.rt, bf16=False), replace(b.rt, bf16=True)
    times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for rt in (fp32, bf16):  # warm-up
        prefill(net, timed_prompts[:args.batch_size], b.pad_id, args.batch_size, rt)
    for _ in range(args.rounds):
        for rt in (fp32, bf16):
            times[rt.bf16].append(timed(lambda: prefill(net, timed_prompts, b.pad_id, args.batch_size, rt)))
    tps = {k: tokens / statistics.median(w for w, _ in v) for k, v in times.items()}
    ratio = tps[True] / tps[False]
    cpu_ratio = statistics.median(c for _, c in times[False]) / statistics.median(c for _, c in times[True])
    print(f"prefill float32 {tps[False]:.0f} tokens/s, bf16 autocast {tps[True]:.0f} tokens/s -> bf16 {ratio:.2f}x, "
          f"by CPU time {cpu_ratio:.2f}x (rounds wall/cpu s: fp32 {', '.join(f'{w:.1f}/{c:.1f}' for w, c in times[False])}; "
          f"bf16 {', '.join(f'{w:.1f}/{c:.1f}' for w, c in times[True])})")
    result("prefill_tokens_per_s_fp32", tps[False], "tokens/s")
    result("prefill_tokens_per_s_bf16", tps[True], "tokens/s")
    result("prefill_bf16_vs_fp32", ratio, "ratio")
    result("prefill_bf16_vs_fp32_cpu", cpu_ratio, "ratio")

    top1, secs = {}, {}
    for rt in (fp32, bf16):
        b.rt = rt
        t0 = time.perf_counter()
        top1[rt.bf16] = [p.raw_text for p in b.predict(ref, examples, prompt, Decoding(batch_size=args.batch_size)).items]
        secs[rt.bf16] = time.perf_counter() - t0
    agree = sum(x == y for x, y in zip(top1[False], top1[True])) / len(examples)
    gold = [ex.label for ex in examples]
    acc = {k: sum(x == y for x, y in zip(v, gold)) / len(gold) for k, v in top1.items()}
    print(f"score_labels top-1 fp32 vs bf16: {agree:.1%} agree on {len(examples)} rows "
          f"(accuracy fp32 {acc[False]:.1%}, bf16 {acc[True]:.1%}; {len(examples) / secs[False]:.2f} vs "
          f"{len(examples) / secs[True]:.2f} ex/s)")
    result("dtype_top1_agreement", agree, "fraction")

    key = dtype_probe.cache_key(*cpu_info(), torch.__version__, torch.get_num_threads())
    entry = dtype_probe._read_cache(dtype_probe.cache_path()).get(key)
    fresh = dtype_probe.probe(1.0)
    chose_bf16 = b.dtype_name == "bfloat16"
    ok = ratio > 1.0 if chose_bf16 else ratio < dtype_probe.MIN_SPEEDUP
    print(f"backend.dtype=auto chose {b.dtype_name}: {b.dtype_reason}")
    print(f"  probe cache entry: {entry}; a fresh probe now: bf16 {fresh.speedup:.2f}x fp32 "
          f"(threshold {dtype_probe.MIN_SPEEDUP}x); the real-model prefill above: {ratio:.2f}x -> "
          f"{'consistent' if ok else 'INCONSISTENT'}")
    result("dtype_auto_bf16", float(chose_bf16), "bool")
    result("dtype_auto_ok", float(ok), "bool", "" if args.quick else "==1")  # the tiny model says nothing of it


if __name__ == "__main__":
    main()
