"""The one training loop: it trains whatever a method plans, and knows no method.

A method (:mod:`ftlab_local_peft.methods`) turns a :class:`~ftlab.contract.TrainJob` into a
:class:`Plan`: the trainable model, one length per training item, a loss over a batch of item
indices, the parameters and optional optimizer groups, an optional eval loss and what it saves.
:func:`train` owns everything else, the same for every method: seeding, gradient checkpointing,
seeded length-grouped batches, accumulation, clipping, AdamW and the learning-rate schedule,
resumable checkpoints (:mod:`~ftlab_local_peft.checkpoint`), the progress bar, logged curves and
the intermediate values a pruned search reads (``ctx.report``). Device and precision come from the
:class:`~ftlab_local_peft.device.Runtime` every loss runs under; a run over several processes is
:mod:`~ftlab_local_peft.distributed`'s (each rank's rows of a batch, the gradient all-reduce, rank 0's files).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ftlab_local_peft import distributed, fsdp
from ftlab_local_peft.checkpoint import CHECKPOINT_DIR, fingerprint, load_checkpoint, save_checkpoint
from ftlab_local_peft.device import Runtime
from ftlab_local_peft.memory import check_plan_memory


def _nothing(*_args) -> None:
    return None


@dataclasses.dataclass
class Plan:
    """What a training method gives the loop."""

    model: Any
    """The trainable model (peft-wrapped); the backend saves it as the adapter."""
    lengths: Sequence[int]
    """Per training item (tokens), for length-grouped batches; the item count is ``len(lengths)``."""
    loss: Callable[[list[int]], tuple[torch.Tensor, int]]
    """Batch of item indices -> (mean loss over the batch, tokens processed)."""
    params: list
    """Trainable parameters (clipped together)."""
    eval_loss: Callable[[], float] | None = None
    """Loss on the eval split, run at the end of each epoch when ``train.eval_loss``."""
    param_groups: list | None = None
    """Optimizer groups (e.g. a higher learning rate for a new head); default: one group."""
    save: Callable[[Path], None] = _nothing
    """Writes the method's own files into the adapter folder (after the adapter itself)."""
    metrics: dict = dataclasses.field(default_factory=dict)
    """The method's facts (its frozen passes' times, item counts …), logged with the loop's."""
    weights: Sequence[float] | None = None
    """Per item, its weight in the batch's mean loss, when not uniform: over several processes each
    rank's loss counts by its rows' share of these (else by its share of the rows)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    torch.manual_seed(seed)


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  group_by_length: bool) -> list[list[int]]:
    """The batches of one epoch: a seeded shuffle; with grouping, similar lengths share a batch."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    if not group_by_length:
        return [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]
    mega = batch_size * 50
    batches = []
    for i in range(0, len(perm), mega):
        chunk = sorted(perm[i:i + mega], key=lambda k: -lengths[k])
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[k] for k in torch.randperm(len(batches), generator=g).tolist()]


def train(method, session, job) -> tuple[Plan, tuple, dict]:
    """Seed, let ``method`` plan (it builds the adapter, so the seed fixes its initialisation), fit.

    Returns ``(plan, history rows, metrics)``; ``plan.model`` is the tuned model."""
    cfg = session.cfg
    seed_everything(cfg.train.seed)
    plan = method.prepare(session, job)
    check_plan_memory(plan, session)  # before the first step: refuse what would run out of memory
    checkpointing = cfg.backend.gradient_checkpointing and hasattr(plan.model, "gradient_checkpointing_enable")
    if checkpointing:
        plan.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        history, metrics = fit(plan, job, cfg, session.ctx, session.rt)
    finally:
        if checkpointing:
            plan.model.gradient_checkpointing_disable()
    return plan, history, {**plan.metrics, **metrics}


def fit(plan: Plan, job, cfg, ctx, rt: Runtime):
    """Seeded length-grouped batches, accumulation, clipping, schedule, checkpoints, reports.

    Returns (history rows, metrics). Resumes from ``<out_dir>/checkpoint`` when its fingerprint
    matches the config and data.
    """
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    tc, bc = cfg.train, cfg.backend
    group = distributed.current()
    lockstep = fsdp.active(group)  # the base is sharded: every rank runs every micro-batch's forward
    model = plan.model
    n_items = len(plan.lengths)
    bs, ga = tc.batch_size, tc.gradient_accumulation_steps
    n_batches = math.ceil(n_items / bs)
    total = tc.max_steps if tc.max_steps > 0 else max(1, math.ceil(tc.epochs * n_batches / ga))
    opt = torch.optim.AdamW(plan.param_groups or plan.params, lr=tc.learning_rate,
                            weight_decay=tc.weight_decay)
    sched = get_scheduler(tc.lr_scheduler, opt, num_warmup_steps=math.ceil(tc.warmup_ratio * total),
                          num_training_steps=total)

    ckpt_dir = Path(job.out_dir) / CHECKPOINT_DIR
    group.checkpoint(ckpt_dir)  # a follower resumes from rank 0's checkpoint
    fp = fingerprint(cfg, job)
    amp = rt.stepper()  # grad scaler in fp16, XLA step marker on a TPU; plain backward/step otherwise
    state = load_checkpoint(ckpt_dir, model, opt, sched, fp, amp.scaler) or {}
    step, history = state.get("step", 0), list(state.get("history", []))
    window, epochs_done = list(state.get("window", [])), state.get("epochs_done", 0)
    tokens, t0 = 0, time.perf_counter()
    cache: dict[int, list[list[int]]] = {}

    def batch_at(micro: int) -> list[int]:
        e, j = divmod(micro, n_batches)
        if e not in cache:
            cache.clear()
            cache[e] = epoch_batches(plan.lengths, bs, tc.seed, e, bc.group_by_length)
        return cache[e][j]

    def log(row: dict) -> None:
        history.append(row)
        ctx.log_metrics({k: v for k, v in row.items() if k != "step"}, row["step"])

    model.train()
    bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not (bc.progress and group.main),
               dynamic_ncols=True)
    while step < total:
        step_loss, step_tokens = 0.0, 0
        for k in range(ga):
            batch = batch_at(step * ga + k)
            rows, share = group.part(batch, plan.weights)  # alone: the batch, 1.0
            idle = not rows
            if lockstep:  # fsdp: every rank runs each layer's collectives, with rows or not
                rows, share = fsdp.lockstep(batch, rows, share)
            if rows:
                loss, n_tok = plan.loss(rows)
                amp.backward(loss * share / ga)
                step_loss += loss.detach().item() * share / ga
                step_tokens += 0 if idle else n_tok
        step_loss, step_tokens = group.sum_grads(plan.params, step_loss, step_tokens)
        tokens += step_tokens
        amp.unscale(opt)
        if bc.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(plan.params, bc.max_grad_norm)
        lr = sched.get_last_lr()[0]
        amp.step(opt)
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        window.append(step_loss)
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.4f}")
        epoch = step * ga / n_batches
        if step % tc.logging_steps == 0 or step == total:
            log({"step": step, "train/loss": sum(window) / len(window), "train/learning_rate": lr,
                 "train/epoch": epoch})
            window = []
        if plan.eval_loss is not None and (int(epoch) > epochs_done or step == total):
            epochs_done = int(epoch)
            model.eval()
            value = plan.eval_loss()
            log({"step": step, "train/eval_loss": value, "train/epoch": epoch})
            model.train()
            # a search may prune the run here (ctx.report raises ftlab.contract.Pruned); its step is
            # the epochs begun, a unit every trial shares whatever its batch size
            ctx.report({"train/eval_loss": value}, math.ceil(epoch - 1e-9))
        if bc.checkpoint_steps > 0 and step % bc.checkpoint_steps == 0 and step < total and group.main:
            save_checkpoint(ckpt_dir, model, opt, sched,
                            {"fingerprint": fp, "step": step, "history": history,
                             "window": window, "epochs_done": epochs_done}, amp.scaler)
    bar.close()
    model.eval()
    train_s = time.perf_counter() - t0
    metrics = {"time/train_s": train_s, "train/trainable_params": float(sum(p.numel() for p in plan.params)),
               "train/tokens_per_s": tokens / train_s if train_s > 0 else 0.0,
               "train/steps": float(total), "train/resumed_from_step": float(state.get("step", 0))}
    return tuple(history), metrics
