"""score_labels (shared-prefix KV cache, one batched label pass) vs a naive baseline (one full
forward per label), measured in the same run on the same examples.

    python plugins/local_peft/benchmarks/bench_score_labels.py            # tiny random model
    python plugins/local_peft/benchmarks/bench_score_labels.py --real     # SmolLM2-135M GGUF
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import context, load_examples, make_cfg  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="store_true", help="use the SmolLM2-135M GGUF model")
    ap.add_argument("-n", type=int, default=8, help="examples to score")
    ap.add_argument("--max-input-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--bf16", action="store_true", help="enable bf16 autocast (off by default)")
    args = ap.parse_args()

    import torch

    from ftlab.contract import Decoding
    from ftlab.prompt import make_prompt
    from ftlab_local_peft import encoding, inference
    from ftlab_local_peft.backend import LocalPeftBackend

    examples, labels = load_examples(args.n + 1)
    cfg = make_cfg(args.real, labels, backend={"progress": False, "bf16_autocast": args.bf16},
                   prompt={"max_input_tokens": args.max_input_tokens})
    prompt = make_prompt(cfg.prompt, labels)
    b = LocalPeftBackend(cfg, context())
    ref, dec = b.base_model(), Decoding(batch_size=args.batch_size)
    b.predict(ref, examples, prompt, dec)  # load (tiny: tokenizer trained on these texts) + warm-up
    examples = examples[1:]

    t0 = time.perf_counter()
    fast = b.predict(ref, examples, prompt, dec)
    t_fast = (time.perf_counter() - t0) / len(examples)

    conts = [encoding.label_ids(b._tok, lab, b.end_id, cfg.backend.score_end_token) for lab in labels]
    net, _ = b._model_for(ref)
    t0 = time.perf_counter()
    with torch.inference_mode():
        naive = [inference.naive_label_scores(net, encoding.prompt_ids(b._tok, prompt, ex.text), conts, b.rt)
                 for ex in examples]
    t_naive = (time.perf_counter() - t0) / len(examples)

    agree = sum(p.raw_text == labels[max(range(len(labels)), key=s.__getitem__)]
                for p, s in zip(fast.items, naive))
    diff = max(abs(p.scores[lab] - s[j]) for p, s in zip(fast.items, naive) for j, lab in enumerate(labels))
    model = cfg.model.name
    print(f"{model}, {len(examples)} examples x {len(labels)} labels, bf16={b.rt.bf16}, "
          f"batch_size={args.batch_size}, mean prompt {sum(p.prompt_tokens for p in fast.items) / len(examples):.0f} tokens")
    print(f"score_labels {t_fast:.3f} s/example vs naive {t_naive:.3f} s/example "
          f"({t_naive / t_fast:.1f}x); argmax agreement {agree}/{len(examples)}, max |dlogp| {diff:.3g}")


if __name__ == "__main__":
    main()
