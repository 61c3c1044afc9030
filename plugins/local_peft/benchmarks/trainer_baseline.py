"""The training baseline of issue 8 (target 2): a plain, idiomatic transformers ``Trainer`` + peft LoRA script.

What a user would write without ftlab: ``get_peft_model`` with a ``LoraConfig``, rows of ``input_ids`` and
``labels`` (-100 on the prompt, so the loss covers the label tokens only), a ``DataCollatorForSeq2Seq``
padding collator, ``TrainingArguments(use_cpu=True, ...)`` and ``Trainer.train()``. Its loss is the model's
own: the mean over the label tokens of a whole optimizer step (transformers passes ``num_items_in_batch``
across the accumulated micro-batches). ``warmup_steps`` takes the warm-up *ratio* (a float < 1): transformers
5 replaced ``warmup_ratio`` with it and rounds up as ftlab does.

bench_train.py imports :func:`train` and hands it the same model, rows and order as ftlab's loop. Run alone,
this script tokenises the first ``--rows`` training rows with ftlab's prompt (so that the token sequences
are exactly ftlab's; the comparison is about the training loop, not the tokeniser), shuffles them with
Trainer's own sampler and prints its tokens/s and loss per step:

    python plugins/local_peft/benchmarks/trainer_baseline.py [--rows 32] [--max-steps 8] [--bf16] [--tiny]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).parent))


@dataclass(frozen=True)
class Settings:
    """The hyperparameters both loops share (ftlab's defaults from conf/train/lora.yaml)."""

    batch_size: int = 4
    grad_accum: int = 2
    learning_rate: float = 3e-4
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.05
    max_steps: int = 8
    max_grad_norm: float = 1.0
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    bf16: bool = False
    seed: int = 42


@dataclass
class Outcome:
    losses: list[float]
    """Logged loss per optimizer step."""
    runtime_s: float
    """Trainer's own ``train_runtime`` (the ``train()`` loop)."""
    wall_s: float
    """Wall time of LoRA wrapping + Trainer construction + ``train()``."""
    tokens: int
    """Non-padding tokens the collator handed to the model."""
    model: object = field(repr=False, default=None)
    """The peft-wrapped model (``.unload()`` gives the base back unchanged)."""


class CountingCollator:
    """``DataCollatorForSeq2Seq`` that also counts the real (non-padding) tokens it batches."""

    def __init__(self, tokenizer):
        from transformers import DataCollatorForSeq2Seq

        self.inner = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
        self.tokens = 0

    def __call__(self, features):
        batch = self.inner(features)
        self.tokens += int(batch["attention_mask"].sum())
        return batch


def train(model, tokenizer, rows: Sequence[dict], s: Settings, order: Optional[Sequence[int]] = None,
          out_dir: Optional[str] = None) -> Outcome:
    """LoRA-tune ``model`` with ``Trainer`` on ``rows`` (dicts of input_ids + labels).

    With ``order`` the rows are fed in exactly that order (a sequential sampler over the reordered list),
    so another loop can be given the same batches; without it, Trainer shuffles as usual.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments, set_seed

    t0 = time.perf_counter()
    set_seed(s.seed)
    peft_model = get_peft_model(model, LoraConfig(
        task_type="CAUSAL_LM", r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout,
        target_modules=list(s.target_modules)))
    data = [rows[i] for i in order] if order is not None else list(rows)
    args = TrainingArguments(
        output_dir=out_dir or tempfile.mkdtemp(prefix="trainer-baseline-"), use_cpu=True,
        per_device_train_batch_size=s.batch_size, gradient_accumulation_steps=s.grad_accum,
        learning_rate=s.learning_rate, lr_scheduler_type=s.lr_scheduler, warmup_steps=s.warmup_ratio,
        max_steps=s.max_steps, max_grad_norm=s.max_grad_norm, bf16=s.bf16, seed=s.seed,
        logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True, remove_unused_columns=False,
        train_sampling_strategy="sequential" if order is not None else "random")
    collator = CountingCollator(tokenizer)
    trainer = Trainer(model=peft_model, args=args, train_dataset=data, data_collator=collator)
    out = trainer.train()
    wall = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return Outcome(losses, float(out.metrics["train_runtime"]), wall, collator.tokens, peft_model)


def feature_rows(tokenizer, prompt, examples, end_id: int) -> list[dict]:
    """ftlab's tokenisation of ``examples`` (prompt + label + end token) as Trainer rows."""
    from ftlab_local_peft.encoding import make_features

    return [{"input_ids": list(f.input_ids), "labels": list(f.labels)}
            for f in make_features(tokenizer, prompt, examples, end_id)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--max-steps", type=int, default=8)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (TrainingArguments.bf16)")
    ap.add_argument("--tiny", action="store_true", help="the tiny random model instead of SmolLM2")
    args = ap.parse_args()

    from _common import context, load_examples, make_cfg
    from ftlab.prompt import make_prompt
    from ftlab_local_peft.backend import LocalPeftBackend

    examples, labels = load_examples(args.rows, "train")
    cfg = make_cfg(not args.tiny, labels, backend={"progress": False, "dtype": "float32"})
    prompt = make_prompt(cfg.prompt, labels)
    b = LocalPeftBackend(cfg, context())  # only to load the model and tokenizer as ftlab does
    b._ensure_loaded(examples, prompt)
    b._tok.padding_side = "right"
    rows = feature_rows(b._tok, prompt, examples, b.end_id)
    res = train(b._base, b._tok, rows, Settings(max_steps=args.max_steps, bf16=args.bf16))
    print(f"{cfg.model.name}: {args.rows} rows, {args.max_steps} steps, train_runtime {res.runtime_s:.1f} s, "
          f"{res.tokens / res.runtime_s:.0f} tokens/s; loss per step: "
          + " ".join(f"{x:.4f}" for x in res.losses))


if __name__ == "__main__":
    main()
