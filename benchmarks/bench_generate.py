"""Generation throughput (issue 18): ftlab's batched generation against a plain per-row ``model.generate`` loop.

Both sides generate for the same eval rows of data/mtsamples_summarize with the mtsamples_summarize
experiment's prompt and decoding (greedy, 10 to 40 new tokens, stop at a newline, its batch size), on the
same loaded model and in the same dtype:

- *ftlab*: the backend's ``predict`` with ``decoding.mode=generate``, i.e. ``inference.generate``:
  length-grouped, left-padded batches through ``generate`` with its KV cache.
- *per-row*: ``inference.per_row_generate``, one ``model.generate`` call per prompt (no padding), the same
  prompt token ids, stop strings, end token and autocast.

``generate_vs_per_row`` is ftlab's new tokens/s over the per-row loop's, both timed in this run (target >= 2),
``*_cpu`` the same by this process's CPU seconds (read it when the load average is high: on a busy 2-core
machine the per-row loop's thousands of small ops wait for the neighbours far more than the batches do, which
inflates the wall-clock ratio). ``generate_identical`` is the fraction of rows whose greedy text is the same
both ways (target 1); each row that differs is printed with the first token where the two diverge. It runs in
the dtype ``backend.dtype=auto`` picks and, when that is bf16, again in float32: bf16 rounding depends on
the shape of each matrix product (a batch of 16 rows is not 16 products of one row), so a near-tie between
two tokens can go either way; float32 shows whether batching itself changes anything.

    python benchmarks/bench_generate.py            # SmolLM2-135M, 16 eval rows (a few minutes on 2 cores)
    python benchmarks/bench_generate.py --quick    # the smoke experiment: tiny random model, 12 rows
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import machine_line, result  # noqa: E402  (this folder)


def timed(fn):
    """(value, wall s, CPU s of this process over all its threads) of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def setup(experiment: str, n: int, dtype: str, batch_size: int | None):
    """(backend, eval rows, prompt, decoding) as ``ftlab +experiment=<experiment>`` would build them."""
    from ftlab.config.compose import compose, decoding_for, validate
    from ftlab.contract import RunContext
    from ftlab.data import load_data
    from ftlab.plugins import get_plugins
    from ftlab.prompt import make_prompt

    over = [f"+experiment={experiment}", "backend.progress=false", f"backend.dtype={dtype}",
            f"data.max_eval_rows={n + 2}"]
    if batch_size:
        over.append(f"eval.decoding.batch_size={batch_size}")
    cfg = validate(compose(over))
    plugins = get_plugins()
    data = load_data(cfg.data, cfg.eval.splits, target=plugins.task(cfg.eval.task).target, need_train=False)
    rows = data.splits["eval"].examples[:n + 2]
    prompt = make_prompt(cfg.prompt, cfg.data.labels)
    backend = plugins.backend(cfg.backend.name).factory(cfg, RunContext(run_dir=Path(tempfile.mkdtemp())))
    return backend, rows, prompt, decoding_for(cfg)


def compare(b, rows, prompt, decoding, label: str, full: bool) -> None:
    """Time ftlab's batched ``predict`` and the per-row loop on ``rows``; print and RESULT the figures."""
    from ftlab_local_peft import encoding, inference

    warm, rows = rows[:2], rows[2:]
    ref = b.base_model()
    b.predict(ref, warm, prompt, decoding)  # loads the model, first-call set-up
    net, _ = b._model_for(ref)
    tok = b._tok
    prompts = [encoding.text_ids(tok, prompt, encoding.sent_prompt(tok, prompt, ex.text)[0]) for ex in rows]
    inference.per_row_generate(net, tok, prompts[:1], b.end_id, b.pad_id, decoding, b.rt)
    print(f"[{label}] {b.cfg.model.name}, dtype {'bfloat16' if b.rt.bf16 else 'float32'} ({b.dtype_reason}); "
          f"{len(rows)} rows, prompt {min(map(len, prompts))}-{max(map(len, prompts))} tokens, batch "
          f"{decoding.batch_size}, max_new_tokens {decoding.max_new_tokens}, stop {list(decoding.stop)}")

    preds, bw, bc = timed(lambda: b.predict(ref, rows, prompt, decoding))
    raw, rw, rc = timed(lambda: inference.per_row_generate(net, tok, prompts, b.end_id, b.pad_id, decoding, b.rt))
    mine = [(p.raw_text, p.output_tokens) for p in preds.items]
    plain = [inference.finish_text(tok, r, b.end_id, b.pad_id, decoding.stop) for r in raw]
    n_b, n_r = sum(k for _, k in mine), sum(k for _, k in plain)
    same = [m[0] == p[0] for m, p in zip(mine, plain)]

    steps = sum(len(idx) * max(mine[i][1] for i in idx)
                for idx in inference.length_batches(prompts, decoding.batch_size))
    print(f"  ftlab batched: {n_b} new tokens in {bw:.1f} s wall / {bc:.1f} s CPU = {n_b / bw:.2f} tok/s; "
          f"rows kept decoding after their end: {1 - n_b / max(steps, 1):.0%} of the batch slots")
    print(f"  per-row loop:  {n_r} new tokens in {rw:.1f} s wall / {rc:.1f} s CPU = {n_r / rw:.2f} tok/s")
    print(f"  identical greedy text: {sum(same)}/{len(same)} rows")
    for ex, m, p, r, ok in zip(rows, mine, plain, raw, same):
        if not ok:
            print(f"  differs: {ex.id}: ftlab {m[0]!r}\n           per-row {p[0]!r}")
    suffix = "" if label == "chosen" else f"_{label}"
    ratio = (n_b / bw) / (n_r / rw) if n_r and rw else 0.0
    ratio_cpu = (n_b / bc) / (n_r / rc) if n_r and rc else 0.0
    result(f"generate_tok_s{suffix}", n_b / bw, "tok/s")
    result(f"per_row_tok_s{suffix}", n_r / rw, "tok/s")
    result(f"generate_vs_per_row{suffix}", ratio, "ratio", ">=2" if full else "")
    result(f"generate_vs_per_row_cpu{suffix}", ratio_cpu, "ratio")
    result(f"generate_identical{suffix}", sum(same) / len(same), "fraction", "==1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the smoke experiment: tiny random model, 12 rows")
    ap.add_argument("-n", type=int, default=None, help="eval rows (default 16; quick 12)")
    ap.add_argument("--batch-size", type=int, default=None, help="eval.decoding.batch_size (default: the experiment's)")
    ap.add_argument("--no-float32", action="store_true", help="only the dtype backend.dtype=auto picks")
    args = ap.parse_args()
    n = args.n or (12 if args.quick else 16)
    experiment = "mtsamples_summarize_smoke" if args.quick else "mtsamples_summarize"
    print(machine_line())
    b, rows, prompt, decoding = setup(experiment, n, "auto", args.batch_size)
    if len(rows) < n + 2:
        raise SystemExit(f"{experiment}: only {len(rows)} eval rows, {n + 2} needed")
    compare(b, rows, prompt, decoding, "chosen", not args.quick)
    if b.rt.bf16 and not args.no_float32:
        del b
        b, rows, prompt, decoding = setup(experiment, n, "float32", args.batch_size)
        compare(b, rows, prompt, decoding, "fp32", not args.quick)


if __name__ == "__main__":
    sys.exit(main())
