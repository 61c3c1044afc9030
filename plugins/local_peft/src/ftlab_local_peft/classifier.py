"""``train.method=lora_cls``: LoRA on the top layers plus a linear head over the prompt's last token.

The prompt is the same one the base model is scored with (instruction, label list, truncated
transcript, chat template); the head reads the hidden state of the last prompt token (the
position where the model would start its answer), or the mean over the prompt, or both.

**Frozen lower layers, computed once.** With LoRA only on layers ``k..L-1``
(``backend.train_layers = L - k``), the hidden state entering layer ``k`` is a fixed function of
the input. It is computed once per example under ``inference_mode`` (``lower_states``) and reused
by every epoch and by the tuned evaluation. This is exact, not an approximation: only the part of
the network that changes is run again. When the base evaluation ran the same prompts, its forward
pass already produced these states (the backend keeps them, see :class:`StateCache`), so the tuned
evaluation costs only the top layers.

The head is attached to the base model as ``ftlab_cls_head`` and saved with the adapter through
peft's ``modules_to_save``, so an adapter folder is self-contained: ``ftlab_cls.json`` beside it
names the labels, the pooling and the split layer.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from ftlab_local_peft.loading import autocast

HEAD = "ftlab_cls_head"
META_FILE = "ftlab_cls.json"
POOLINGS = ("last", "mean", "last_mean")


def inner(model):
    """The decoder stack (``LlamaModel`` and friends) inside a causal LM or a peft wrapper."""
    m = model.get_base_model() if hasattr(model, "get_base_model") else model
    return m.model


def num_layers(model) -> int:
    return len(inner(model).layers)


def split_layer(model, train_layers: int) -> int:
    """First trainable layer ``k``: the top ``train_layers`` are tuned (0 or too many: all)."""
    n = num_layers(model)
    return 0 if train_layers <= 0 or train_layers >= n else n - train_layers


@contextlib.contextmanager
def layer_range(model, start: int, stop: int, final_norm: bool):
    """Run only decoder layers ``start..stop-1`` (and the final norm if ``final_norm``).

    Swaps the stack's ``layers`` list (the same module objects) and restores it on exit; with
    ``start > 0`` the forward's ``inputs_embeds`` is the hidden state entering layer ``start``.
    """
    dec = inner(model)
    layers, norm = dec.layers, dec.norm
    dec.layers = torch.nn.ModuleList(list(layers)[start:stop])
    if not final_norm:
        dec.norm = torch.nn.Identity()
    try:
        yield dec
    finally:
        dec.layers, dec.norm = layers, norm


def _right_pad(rows: Sequence[torch.Tensor], device):
    """Stack ``[len_i, H]`` states into ``[b, n, H]`` (zeros after each row) and a 2D mask."""
    n = max(r.shape[0] for r in rows)
    x = rows[0].new_zeros((len(rows), n, rows[0].shape[-1]))
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        x[i, :r.shape[0]] = r
        mask[i, :r.shape[0]] = 1
    return x.to(device), mask.to(device)


def _length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), max(1, batch_size))]


class StateCache:
    """Hidden states entering layer ``k``, keyed by ``(k, prompt ids)``; stored in the compute dtype."""

    def __init__(self):
        self._d: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}

    def get(self, k: int, ids: Sequence[int]):
        return self._d.get((k, tuple(ids)))

    def put(self, k: int, ids: Sequence[int], state: torch.Tensor) -> None:
        self._d[(k, tuple(ids))] = state

    def __len__(self) -> int:
        return len(self._d)

    def capture(self, model, k: int, prompts: Sequence[Sequence[int]]):
        """A forward hook on layer ``k-1`` that stores each prompt's states during a packed pass.

        Used around ``inference.score_labels``: rows are left-padded prompts followed by label
        nodes, so row ``i``'s prompt occupies the ``len(prompt)`` columns before ``width``.
        Returns ``(set_batch, remove)``: call ``set_batch(idx, width)`` before each pass.
        """
        current: dict = {}

        def hook(_mod, _inp, out):
            h = out[0] if isinstance(out, tuple) else out
            idx, width = current["idx"], current["width"]
            for row, i in enumerate(idx):
                n = len(prompts[i])
                self.put(k, prompts[i], h[row, width - n:width].detach().clone())

        handle = inner(model).layers[k - 1].register_forward_hook(hook)

        def set_batch(idx, width):
            current.update(idx=list(idx), width=width)

        return set_batch, handle.remove


def lower_states(model, prompts: Sequence[Sequence[int]], k: int, pad_id: int, rt, batch_size: int,
                 cache: StateCache | None = None, progress: Callable[[int], None] | None = None):
    """Per prompt, the ``[len, H]`` hidden state entering layer ``k`` (``k == 0``: the embeddings)."""
    out: list = [None] * len(prompts)
    todo = []
    for i, p in enumerate(prompts):
        hit = cache.get(k, p) if cache is not None else None
        if hit is not None:
            out[i] = hit
        else:
            todo.append(i)
    if progress and len(todo) < len(prompts):
        progress(len(prompts) - len(todo))
    with torch.inference_mode(), layer_range(model, 0, k, final_norm=False) as dec, \
            autocast(rt.device, rt.bf16):
        for idx in _length_batches([len(prompts[i]) for i in todo], batch_size):
            rows = [todo[j] for j in idx]
            n = max(len(prompts[i]) for i in rows)
            ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), n), dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, :len(prompts[i])] = torch.tensor(list(prompts[i]), dtype=torch.long)
                mask[r, :len(prompts[i])] = 1
            ids, mask = ids.to(rt.device), mask.to(rt.device)
            h = dec.embed_tokens(ids) if k == 0 else dec(input_ids=ids, attention_mask=mask).last_hidden_state
            for r, i in enumerate(rows):
                state = h[r, :len(prompts[i])].detach().clone()
                out[i] = state
                if cache is not None:
                    cache.put(k, prompts[i], state)
            if progress:
                progress(len(rows))
    return out


def _head(model):
    m = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(m, HEAD)


def upper_logits(model, states: Sequence[torch.Tensor], k: int, pooling: str, rt) -> torch.Tensor:
    """``[b, n_labels]`` head logits (float32) from the states entering layer ``k``."""
    x, mask = _right_pad(states, rt.device)
    with layer_range(model, k, num_layers(model), final_norm=True) as dec, autocast(rt.device, rt.bf16):
        h = dec(inputs_embeds=x, attention_mask=mask).last_hidden_state
    h = h.float()
    last = h[torch.arange(h.shape[0], device=h.device), mask.sum(1) - 1]
    if pooling == "last":
        feat = last
    else:
        mean = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        feat = mean if pooling == "mean" else torch.cat([last, mean], dim=-1)
    return _head(model)(feat)


def attach_head(base, n_labels: int, pooling: str) -> None:
    """Give ``base`` a zero-initialised ``ftlab_cls_head`` (zero: the first step starts from uniform)."""
    if pooling not in POOLINGS:
        raise ValueError(f"backend.pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    width = base.config.hidden_size * (2 if pooling == "last_mean" else 1)
    head = torch.nn.Linear(width, n_labels)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    setattr(base, HEAD, head.to(next(base.parameters()).device))


@dataclass(frozen=True)
class ClsMeta:
    """What a new process needs besides the adapter weights to predict with a lora_cls adapter."""

    labels: tuple[str, ...]
    pooling: str
    split_layer: int

    def save(self, folder: Path) -> None:
        from ftlab.paths import atomic_write_text

        atomic_write_text(Path(folder) / META_FILE, json.dumps(
            {"method": "lora_cls", "labels": list(self.labels), "pooling": self.pooling,
             "split_layer": self.split_layer}, indent=1))

    @classmethod
    def load(cls, folder: Path) -> "ClsMeta | None":
        f = Path(folder) / META_FILE
        if not f.is_file():
            return None
        d = json.loads(f.read_text())
        return cls(tuple(d["labels"]), d["pooling"], int(d["split_layer"]))


def class_weights(targets: torch.Tensor, scheme: str) -> torch.Tensor:
    """Per-class loss weights from ``[n, C]`` target rows: none (1), sqrt or balanced inverse frequency.

    ``balanced`` is ``n / (C * count)`` as in scikit-learn; ``sqrt`` its square root (milder for the
    2-row classes). A class absent from the training data gets weight 1.
    """
    c = targets.shape[1]
    count = targets.sum(0)
    if scheme == "none":
        return torch.ones(c)
    w = torch.where(count > 0, targets.shape[0] / (c * count.clamp(min=1e-9)), torch.ones(c))
    if scheme == "sqrt":
        return w.sqrt()
    if scheme == "balanced":
        return w
    raise ValueError(f"train.class_weighting must be none, sqrt or balanced, not {scheme!r}")


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy against target distributions (one-hot or spread over labels)."""
    logp = torch.log_softmax(logits, dim=-1)
    w = targets * weights.to(logits.device)
    return -(w * logp).sum() / w.sum().clamp(min=1e-9)


def training_items(job, labels: Sequence[str], multi_label: str):
    """(row index, target distribution) per training item.

    ``soft``: one item per distinct text, its target spread evenly over every label the data
    accepts for it (the rows of a transcript filed under two labels become one item, half each:
    the model is not asked to give two answers to one input, and the duplicate forward is saved).
    ``rows``: every row as it is, one-hot on its own label.
    """
    idx = {lab: i for i, lab in enumerate(labels)}
    items: list[tuple[int, torch.Tensor]] = []
    if multi_label == "rows":
        for r, ex in enumerate(job.train):
            t = torch.zeros(len(labels))
            t[idx[ex.label]] = 1
            items.append((r, t))
        return items
    if multi_label != "soft":
        raise ValueError(f"train.multi_label must be soft or rows, not {multi_label!r}")
    first: dict[str, int] = {}
    for r, ex in enumerate(job.train):
        accepted = {ex.label, *(a for a in ex.acceptable if a in idx)}
        if ex.text in first:
            items[first[ex.text]][1][[idx[a] for a in accepted]] = 1
            continue
        first[ex.text] = len(items)
        t = torch.zeros(len(labels))
        t[[idx[a] for a in accepted]] = 1
        items.append((r, t))
    return [(r, t / t.sum()) for r, t in items]


def train_cls(base, train_prompts: Sequence[Sequence[int]], eval_prompts: Sequence[Sequence[int]],
              job, cfg, ctx, rt, pad_id: int, cache: StateCache, progress: bool):
    """Attach a head, wrap the top layers with LoRA, tune on cached lower states; (model, meta, history, metrics)."""
    import time

    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm

    from ftlab_local_peft.training import Task, fit, seed_everything

    tc, bc = cfg.train, cfg.backend
    labels = tuple(job.prompt.labels)
    seed_everything(tc.seed)
    k = split_layer(base, bc.train_layers)
    attach_head(base, len(labels), bc.pooling)
    model = get_peft_model(base, LoraConfig(
        r=tc.lora.r, lora_alpha=tc.lora.alpha, lora_dropout=tc.lora.dropout,
        target_modules=list(tc.lora.target_modules), modules_to_save=[HEAD],
        layers_to_transform=list(range(k, num_layers(base)))))
    items = training_items(job, labels, getattr(tc.multi_label, "value", tc.multi_label))
    weights = class_weights(torch.stack([t for _, t in items]), getattr(tc.class_weighting, "value",
                                                                         tc.class_weighting))
    t0 = time.perf_counter()
    with tqdm(total=len(items), desc=f"layers 0-{k - 1} (frozen, once)", unit="ex",
              disable=not progress, dynamic_ncols=True) as bar:
        states = lower_states(model, [train_prompts[r] for r, _ in items], k, pad_id, rt, tc.batch_size * 2,
                              cache, bar.update)
    lower_s = time.perf_counter() - t0
    eval_states = eval_targets = None
    if tc.eval_loss and eval_prompts:
        eval_targets = torch.zeros((len(job.eval), len(labels)))
        for r, ex in enumerate(job.eval):
            eval_targets[r, labels.index(ex.label)] = 1
        eval_states = lower_states(model, eval_prompts, k, pad_id, rt, tc.batch_size * 2, cache)

    def loss(idx):
        logits = upper_logits(model, [states[i] for i in idx], k, bc.pooling, rt)
        return soft_cross_entropy(logits, torch.stack([items[i][1] for i in idx]), weights), \
            sum(int(states[i].shape[0]) for i in idx)

    def eval_loss():
        with torch.inference_mode():
            parts = []
            for j in range(0, len(eval_states), tc.batch_size):
                logits = upper_logits(model, eval_states[j:j + tc.batch_size], k, bc.pooling, rt)
                parts.append(soft_cross_entropy(logits, eval_targets[j:j + tc.batch_size],
                                                torch.ones(len(labels))))
        return float(torch.stack(parts).mean())

    head_params = [p for n, p in model.named_parameters() if p.requires_grad and HEAD in n]
    lora_params = [p for n, p in model.named_parameters() if p.requires_grad and HEAD not in n]
    groups = [{"params": lora_params},
              {"params": head_params, "lr": tc.learning_rate * bc.head_lr_multiplier}]
    task = Task([int(s.shape[0]) for s in states], loss, lora_params + head_params,
                eval_loss if eval_states is not None else None, groups)
    history, metrics = fit(model, task, job, cfg, ctx, rt)
    metrics.update({"time/train_lower_states_s": lower_s, "train/split_layer": float(k),
                    "train/items": float(len(items))})
    return model, ClsMeta(labels, bc.pooling, k), history, metrics


def predict_cls(model, meta: ClsMeta, prompts: Sequence[Sequence[int]], pad_id: int, rt,
                batch_size: int, cache: StateCache | None, progress: bool) -> list[dict]:
    """Head predictions: the argmax label, per-label log-probabilities as scores."""
    import time

    from tqdm.auto import tqdm

    results: list[dict] = [{} for _ in prompts]
    with tqdm(total=2 * len(prompts), desc="lora_cls predict", unit="ex", disable=not progress,
              dynamic_ncols=True) as bar:
        t0 = time.perf_counter()
        states = lower_states(model, prompts, meta.split_layer, pad_id, rt, batch_size, cache, bar.update)
        lower_dt = (time.perf_counter() - t0) / max(len(prompts), 1)
        with torch.inference_mode():
            for idx in _length_batches([len(p) for p in prompts], batch_size):
                t1 = time.perf_counter()
                logp = torch.log_softmax(upper_logits(model, [states[i] for i in idx], meta.split_layer,
                                                      meta.pooling, rt), dim=-1).cpu()
                dt = (time.perf_counter() - t1) / len(idx) + lower_dt
                for row, i in enumerate(idx):
                    best = int(torch.argmax(logp[row]))
                    results[i] = {"raw_text": meta.labels[best], "latency_s": dt,
                                  "scores": {lab: float(logp[row, j]) for j, lab in enumerate(meta.labels)},
                                  "prompt_tokens": len(prompts[i]), "output_tokens": 0}
                bar.update(len(idx))
    return results
