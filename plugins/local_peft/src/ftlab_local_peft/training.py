"""LoRA tuning with a plain torch loop (loss on label tokens only), resumable from a checkpoint.

The data order is a pure function of ``(train.seed, epoch)``, so the position in the data is
derived from the optimizer step; a checkpoint therefore only needs the adapter weights, the
optimizer and scheduler state, the RNG states and the step. Resuming from it gives the same
final adapter as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from ftlab_local_peft.encoding import collate, make_features
from ftlab_local_peft.inference import Runtime
from ftlab_local_peft.loading import autocast, enum_value

CHECKPOINT_DIR = "checkpoint"


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


def _fingerprint(cfg, job) -> str:
    """What must match for a checkpoint to be resumable (train, model and backend config, data ids, prompt)."""
    key = json.dumps({"train": dataclasses.asdict(cfg.train), "model": dataclasses.asdict(cfg.model),
                      "backend": dataclasses.asdict(cfg.backend),
                      "ids": [ex.id for ex in job.train], "prompt": getattr(job.prompt, "sha256", "")},
                     default=str, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def _rng_state() -> dict:
    """The RNG states as tensors, ints and a JSON string: loadable with ``weights_only=True``."""
    import numpy as np

    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "python": json.dumps({"version": version, "state": list(mt), "gauss_next": gauss}),
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(s: dict) -> None:
    import numpy as np

    torch.set_rng_state(s["torch"])
    py = json.loads(s["python"])
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    n = s["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if s.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def save_checkpoint(path: Path, model, opt, sched, state: dict) -> None:
    """Write adapter + optimizer/scheduler/RNG + loop state to ``path``, keeping the previous
    checkpoint until the new one is complete: write ``<path>.tmp``, rename ``path`` to
    ``<path>.old``, rename the tmp to ``path``, delete ``.old``. A crash at any point leaves a
    complete checkpoint at ``path`` or ``<path>.old`` (:func:`load_checkpoint` falls back to it).
    ``state.pt`` holds only tensors and plain containers (it loads with ``weights_only=True``).
    The crash tests kill the process inside this function through :mod:`ftlab.faults`."""
    from ftlab.faults import kill_point

    tmp, old = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp / "adapter", save_embedding_layers=False)
    kill_point("checkpoint.partial", state.get("step"))
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": _rng_state()},
               tmp / "state.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    kill_point("checkpoint.swap", state.get("step"))
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path, model, opt, sched, fingerprint: str) -> dict | None:
    """Restore a matching checkpoint into model/opt/sched and the RNGs; its loop state or None.

    Falls back to ``<path>.old`` when a crash came between the renames of :func:`save_checkpoint`.
    Nothing in it can run code: the adapter is safetensors, the loop state JSON and ``state.pt``
    is read with ``torch.load(weights_only=True)``; anything else there is refused with an error.
    """
    old = path.with_name(path.name + ".old")
    if not (path / "trainer_state.json").is_file():
        if not (old / "trainer_state.json").is_file():
            return None
        path = old  # the new checkpoint never completed; the previous one is whole
    else:
        shutil.rmtree(old, ignore_errors=True)
    state = json.loads((path / "trainer_state.json").read_text())
    if state.get("fingerprint") != fingerprint:
        import warnings

        warnings.warn(f"ignoring checkpoint {path}: it was written for another config or data")
        return None
    import pickle

    try:  # before anything is restored: a refused file leaves model and optimizer untouched
        blob = torch.load(path / "state.pt", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RuntimeError(
            f"refusing to load {path / 'state.pt'}: it holds more than tensors and plain containers, "
            f"so loading it could run code (torch.load weights_only=True said: "
            f"{str(exc).splitlines()[0][:300]}). ftlab never writes such a file; delete {path} to "
            f"train from the start") from None
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(path / "adapter" / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, weights)
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    _set_rng_state(blob["rng"])
    return state


@dataclasses.dataclass
class Task:
    """What a training method gives the shared loop: items, their lengths and a batch loss."""

    lengths: Sequence[int]
    """Per training item (tokens), for length-grouped batches."""
    loss: Callable[[list[int]], tuple[torch.Tensor, int]]
    """Batch of item indices -> (mean loss over the batch, tokens processed)."""
    params: list
    """Trainable parameters (clipped together)."""
    eval_loss: Callable[[], float] | None = None
    """Loss on the eval split, run at the end of each epoch when ``train.eval_loss``."""
    param_groups: list | None = None
    """Optimizer groups (e.g. a higher learning rate for a new head); default: one group."""


def example_weights(job, labels: Sequence[str], scheme: str) -> list[float]:
    """Per training row, the weight of its label under ``train.class_weighting`` (mean 1 over rows)."""
    from ftlab_local_peft.classifier import class_weights

    idx = {lab: i for i, lab in enumerate(labels)}
    onehot = torch.zeros((len(job.train), len(labels)))
    for r, ex in enumerate(job.train):
        onehot[r, idx[ex.label]] = 1
    w = class_weights(onehot, scheme)[[idx[ex.label] for ex in job.train]]
    return (w / w.mean()).tolist()


def _lm_loss(model, feats, weights, pad_id, rt) -> tuple[torch.Tensor, int]:
    """Label-token cross-entropy per example (mean over its target tokens), weighted mean over rows.

    The vocabulary projection runs only at the positions that predict a target token (a few per
    example), not at every prompt position as a causal LM's own loss does.
    """
    ids, mask, labels = (t.to(rt.device) for t in collate(feats, pad_id))
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    tgt = labels[:, 1:]
    sel = tgt != -100
    with autocast(rt.device, rt.bf16):
        h = lm.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1][sel]
        logits = lm.lm_head(h)
    tok = torch.nn.functional.cross_entropy(logits.float(), tgt[sel], reduction="none")
    rows = sel.nonzero()[:, 0]
    per_ex = torch.zeros(len(feats), dtype=tok.dtype, device=tok.device).index_add(0, rows, tok) \
        / sel.sum(1).clamp(min=1)
    w = torch.tensor(weights, dtype=per_ex.dtype, device=per_ex.device)
    return (per_ex * w).sum() / w.sum(), int(mask.sum())


def train_lora(base, tokenizer, job, cfg, ctx, rt: Runtime, end_id: int, pad_id: int):
    """Wrap ``base`` with a fresh LoRA adapter and tune it generatively (loss on the label tokens)."""
    from peft import LoraConfig, get_peft_model

    tc, bc = cfg.train, cfg.backend
    seed_everything(tc.seed)
    model = get_peft_model(base, LoraConfig(
        task_type="CAUSAL_LM", r=tc.lora.r, lora_alpha=tc.lora.alpha, lora_dropout=tc.lora.dropout,
        target_modules=list(tc.lora.target_modules)))
    if bc.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    feats = make_features(tokenizer, job.prompt, job.train, end_id)
    weights = example_weights(job, job.prompt.labels, enum_value(tc.class_weighting))
    eval_feats = make_features(tokenizer, job.prompt, job.eval, end_id) if tc.eval_loss else []

    def loss(idx):
        return _lm_loss(model, [feats[i] for i in idx], [weights[i] for i in idx], pad_id, rt)

    def eval_loss():
        with torch.inference_mode():
            parts = [_lm_loss(model, eval_feats[i:i + tc.batch_size], [1.0] * len(eval_feats[i:i + tc.batch_size]),
                              pad_id, rt)[0] for i in range(0, len(eval_feats), tc.batch_size)]
        return float(torch.stack(parts).mean())

    params = [p for p in model.parameters() if p.requires_grad]
    task = Task([len(f) for f in feats], loss, params, eval_loss if eval_feats else None)
    history, metrics = fit(model, task, job, cfg, ctx, rt)
    if bc.gradient_checkpointing:
        model.gradient_checkpointing_disable()
    return model, history, metrics


def fit(model, task: Task, job, cfg, ctx, rt: Runtime):
    """The shared loop: seeded length-grouped batches, accumulation, clipping, schedule, checkpoints.

    Returns (history rows, metrics). Resumes from ``<out_dir>/checkpoint`` when its fingerprint
    matches the config and data.
    """
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    tc, bc = cfg.train, cfg.backend
    n_items = len(task.lengths)
    bs, ga = tc.batch_size, tc.gradient_accumulation_steps
    n_batches = math.ceil(n_items / bs)
    total = tc.max_steps if tc.max_steps > 0 else max(1, math.ceil(tc.epochs * n_batches / ga))
    opt = torch.optim.AdamW(task.param_groups or task.params, lr=tc.learning_rate,
                            weight_decay=tc.weight_decay)
    sched = get_scheduler(tc.lr_scheduler, opt, num_warmup_steps=math.ceil(tc.warmup_ratio * total),
                          num_training_steps=total)

    ckpt_dir = Path(job.out_dir) / CHECKPOINT_DIR
    fp = _fingerprint(cfg, job)
    state = load_checkpoint(ckpt_dir, model, opt, sched, fp) or {}
    step, history = state.get("step", 0), list(state.get("history", []))
    window, epochs_done = list(state.get("window", [])), state.get("epochs_done", 0)
    tokens, t0 = 0, time.perf_counter()
    cache: dict[int, list[list[int]]] = {}

    def batch_at(micro: int) -> list[int]:
        e, j = divmod(micro, n_batches)
        if e not in cache:
            cache.clear()
            cache[e] = epoch_batches(task.lengths, bs, tc.seed, e, bc.group_by_length)
        return cache[e][j]

    def log(row: dict) -> None:
        history.append(row)
        ctx.log_metrics({k: v for k, v in row.items() if k != "step"}, row["step"])

    model.train()
    bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not bc.progress,
               dynamic_ncols=True)
    while step < total:
        step_loss = 0.0
        for k in range(ga):
            loss, n_tok = task.loss(batch_at(step * ga + k))
            (loss / ga).backward()
            step_loss += loss.detach().item() / ga
            tokens += n_tok
        if bc.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(task.params, bc.max_grad_norm)
        lr = sched.get_last_lr()[0]
        opt.step()
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
        if task.eval_loss is not None and (int(epoch) > epochs_done or step == total):
            epochs_done = int(epoch)
            model.eval()
            value = task.eval_loss()
            log({"step": step, "train/eval_loss": value, "train/epoch": epoch})
            model.train()
            # a search may prune the run here (ctx.report raises ftlab.contract.Pruned); its step is
            # the epochs begun, a unit every trial shares whatever its batch size
            ctx.report({"train/eval_loss": value}, math.ceil(epoch - 1e-9))
        if bc.checkpoint_steps > 0 and step % bc.checkpoint_steps == 0 and step < total:
            save_checkpoint(ckpt_dir, model, opt, sched,
                            {"fingerprint": fp, "step": step, "history": history,
                             "window": window, "epochs_done": epochs_done})
    bar.close()
    model.eval()
    train_s = time.perf_counter() - t0
    metrics = {"time/train_s": train_s, "train/trainable_params": float(sum(p.numel() for p in task.params)),
               "train/tokens_per_s": tokens / train_s if train_s > 0 else 0.0,
               "train/steps": float(total), "train/resumed_from_step": float(state.get("step", 0))}
    return tuple(history), metrics
