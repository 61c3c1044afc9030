"""``train.method=lora_cls``: LoRA plus a linear head, trained on frozen context computed once.

The prompt is the one the base model is scored with (instruction, label list, truncated
transcript, chat template). It is split into a *context* (all but the last
``backend.adapted_tokens`` tokens) and the *adapted tokens* (the end of the instruction and the
assistant header, where the model would start its answer). The context is encoded once by the
frozen model; its keys and values at every tuned layer are kept (:class:`FrozenState`). Training
and prediction then run only the adapted tokens through the LoRA-adapted layers, attending to that
cached context, and a linear head reads the last adapted token (or their mean).

This is the model, not an approximation of one: context encoded by the base model, answer
positions by the adapted one, the same in training, in the tuned evaluation and in ``ftlab
predict``. It makes an epoch cost a few tokens per example instead of the whole prompt, so many
epochs fit in the time one full LoRA epoch takes; the one full forward per example is shared with
the base evaluation when it scored the same prompts (the backend keeps its states,
:class:`StateCache`). ``adapted_tokens=0`` adapts every token (classic LoRA on the top
``backend.train_layers`` layers, whose lower layers are then computed once).

The head is attached to the base model as ``ftlab_cls_head`` and saved with the adapter through
peft's ``modules_to_save``, so an adapter folder is self-contained: ``ftlab_cls.json`` beside it
names the labels, the pooling, the first tuned layer and the adapted-token count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ftlab_local_peft.frozen import (FrozenState, StateCache, document_means, lower_states, num_layers,
                                     split_layer, upper_hidden)
from ftlab_local_peft.inference import _batches
from ftlab_local_peft.loading import enum_value

HEAD = "ftlab_cls_head"
META_FILE = "ftlab_cls.json"
POOLINGS = ("last", "mean", "last_mean", "last_context")
__all__ = ["StateCache", "FrozenState", "lower_states", "upper_hidden", "split_layer", "train_cls",
           "predict_cls", "ClsMeta", "attach_head", "class_weights", "training_items"]


def head_features(model, states: Sequence[FrozenState], k: int, pooling: str, rt,
                  docs: torch.Tensor | None = None) -> torch.Tensor:
    """``[b, F]`` float32: what the head reads, each part layer-normed without parameters.

    The parts: the pooled adapted tokens (``pooling``), the frozen prompt mean (last_context) and
    ``docs`` (the rows' document means, :func:`~ftlab_local_peft.frozen.document_means`)."""
    h, suf = upper_hidden(model, states, k, rt)
    b, dev = h.shape[0], h.device
    last = h[torch.arange(b, device=dev), suf.sum(1) - 1]
    if pooling == "last":
        parts = [last]
    elif pooling == "last_context":
        parts = [last, torch.stack([st.pooled for st in states]).to(dev)]
    else:
        mean = (h * suf[..., None]).sum(1) / suf.sum(1, keepdim=True)
        parts = [mean] if pooling == "mean" else [last, mean]
    if docs is not None:
        parts.append(docs.to(dev))
    # parameter-free layer norm per part: the final states' scale is large and differs between the
    # parts, and a new zero-initialised head with a high learning rate diverged on the raw values
    return torch.cat([torch.nn.functional.layer_norm(x, x.shape[-1:]) for x in parts], dim=-1)


def upper_logits(model, states: Sequence[FrozenState], k: int, pooling: str, rt,
                 docs: torch.Tensor | None = None) -> torch.Tensor:
    """``[b, n_labels]`` head logits (float32) over :func:`head_features`."""
    return _head(model)(head_features(model, states, k, pooling, rt, docs))


def fit_probe(x: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, c: float,
              max_iter: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear probe: multinomial logistic regression on fixed features, fitted to convergence.

    Minimises ``sum_i w . t_i . -log softmax(W x_i + b) + ||W||^2 / (2c)``: scikit-learn's
    ``LogisticRegression(C=c)`` objective, with class-weighted (soft) targets, solved by L-BFGS.
    Returns ``(W [C, F], b [C])``. Used to start the head where a converged probe ends, so that
    fine-tuning (LP-FT) adapts the model around a good head instead of training both from zero.
    """
    x = x.detach().float().clone()  # features may come from inference mode
    w = torch.zeros((targets.shape[1], x.shape[1]), requires_grad=True)
    b = torch.zeros(targets.shape[1], requires_grad=True)
    tw = (targets * weights).detach()
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -(tw * torch.log_softmax(x @ w.T + b, dim=-1)).sum() + (w * w).sum() / (2 * c)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def _head(model):
    m = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(m, HEAD)


def attach_head(base, n_labels: int, pooling: str, document: bool = False) -> None:
    """Give ``base`` a zero-initialised ``ftlab_cls_head`` (zero: the first step starts from uniform)."""
    if pooling not in POOLINGS:
        raise ValueError(f"backend.pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    parts = (2 if pooling in ("last_mean", "last_context") else 1) + (1 if document else 0)
    width = base.config.hidden_size * parts
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
    adapted_tokens: int
    document_tokens: int = 0
    """>0: the head also reads the frozen mean over the input's first N tokens (see document_means)."""
    document_chunk_tokens: int = 512

    def save(self, folder: Path) -> None:
        from ftlab.paths import atomic_write_text

        atomic_write_text(Path(folder) / META_FILE, json.dumps(
            {"method": "lora_cls", "labels": list(self.labels), "pooling": self.pooling,
             "split_layer": self.split_layer, "adapted_tokens": self.adapted_tokens,
             "document_tokens": self.document_tokens,
             "document_chunk_tokens": self.document_chunk_tokens}, indent=1))

    @classmethod
    def load(cls, folder: Path) -> "ClsMeta | None":
        f = Path(folder) / META_FILE
        if not f.is_file():
            return None
        d = json.loads(f.read_text())
        return cls(tuple(d["labels"]), d["pooling"], int(d["split_layer"]), int(d["adapted_tokens"]),
                   int(d.get("document_tokens", 0)), int(d.get("document_chunk_tokens", 512)))


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


def document_features(model, docs: Sequence[Sequence[int]], chunk: int, pad_id: int, rt,
                      cache: dict | None, progress: bool) -> torch.Tensor:
    """``[n, H]`` document means (:func:`document_means`), computing only those not in ``cache``
    (keyed by chunk length and token ids; the backend keeps one per process)."""
    from tqdm.auto import tqdm

    keys = [(chunk, tuple(d)) for d in docs]
    todo = list(dict.fromkeys(k for k in keys if cache is None or k not in cache))
    if todo:
        with tqdm(total=len(todo), desc="document means (once)", unit="ex", disable=not progress,
                  dynamic_ncols=True) as bar:
            got = document_means(model, [list(k[1]) for k in todo], chunk, pad_id, rt, progress=bar.update)
        found = dict(zip(todo, got))
        if cache is not None:
            cache.update(found)
    else:
        found = {}
    return torch.stack([found[k] if k in found else cache[k] for k in keys]) if keys else torch.zeros((0, 0))


def train_cls(base, train_prompts: Sequence[Sequence[int]], eval_prompts: Sequence[Sequence[int]],
              job, cfg, ctx, rt, pad_id: int, progress: bool,
              train_docs: Sequence[Sequence[int]] | None = None,
              eval_docs: Sequence[Sequence[int]] | None = None, doc_cache: dict | None = None):
    """Attach a head, wrap the top layers with LoRA, tune on cached lower states; (model, meta, history, metrics)."""
    import time

    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm

    from ftlab_local_peft.training import Task, fit, seed_everything

    tc, bc = cfg.train, cfg.backend
    labels = tuple(job.prompt.labels)
    seed_everything(tc.seed)
    k = split_layer(base, bc.train_layers)
    doc_n, doc_chunk = (bc.document_tokens if train_docs is not None else 0), bc.document_chunk_tokens
    attach_head(base, len(labels), bc.pooling, doc_n > 0)
    items = training_items(job, labels, enum_value(tc.multi_label))
    targets = torch.stack([t for _, t in items])
    weights = class_weights(targets, enum_value(tc.class_weighting))
    t0 = time.perf_counter()
    with tqdm(total=len(items), desc="frozen context (once)", unit="ex",
              disable=not progress, dynamic_ncols=True) as bar:
        # the training rows' states live as long as training (not in the cache): ~2 GB for 383 rows
        states = lower_states(base, [train_prompts[r] for r, _ in items], k, bc.adapted_tokens, pad_id, rt,
                              tc.batch_size * 2, None, bar.update)
    lower_s = time.perf_counter() - t0
    docs = eval_doc_feats = None
    t0 = time.perf_counter()
    if doc_n > 0:
        docs = document_features(base, [train_docs[r] for r, _ in items], doc_chunk, pad_id, rt, doc_cache,
                                 progress)
        if tc.eval_loss and eval_prompts and eval_docs is not None:
            eval_doc_feats = document_features(base, eval_docs, doc_chunk, pad_id, rt, doc_cache, progress)
    docs_s = time.perf_counter() - t0
    probe_s = 0.0
    if enum_value(bc.head_init) == "probe":
        t1 = time.perf_counter()
        with torch.inference_mode():
            feats = torch.cat([head_features(base, states[j:j + tc.batch_size * 2], k, bc.pooling, rt,
                                             docs[j:j + tc.batch_size * 2] if docs is not None else None)
                               for j in range(0, len(states), tc.batch_size * 2)])
        wt, bias = fit_probe(feats, targets, weights, bc.probe_c)
        head = getattr(base, HEAD)
        with torch.no_grad():
            head.weight.copy_(wt)
            head.bias.copy_(bias)
        probe_s = time.perf_counter() - t1
    elif enum_value(bc.head_init) != "zero":
        raise ValueError(f"backend.head_init must be zero or probe, not {bc.head_init!r}")
    model = get_peft_model(base, LoraConfig(
        r=tc.lora.r, lora_alpha=tc.lora.alpha, lora_dropout=tc.lora.dropout,
        target_modules=list(tc.lora.target_modules), modules_to_save=[HEAD],
        layers_to_transform=list(range(k, num_layers(base)))))
    eval_states = eval_targets = None
    if tc.eval_loss and eval_prompts:
        eval_targets = torch.zeros((len(job.eval), len(labels)))
        for r, ex in enumerate(job.eval):
            eval_targets[r, labels.index(ex.label)] = 1
        eval_states = lower_states(model, eval_prompts, k, bc.adapted_tokens, pad_id, rt, tc.batch_size * 2,
                                   None)

    def loss(idx):
        logits = upper_logits(model, [states[i] for i in idx], k, bc.pooling, rt,
                              docs[idx] if docs is not None else None)
        return soft_cross_entropy(logits, torch.stack([items[i][1] for i in idx]), weights), \
            sum(states[i].tokens for i in idx)

    def eval_loss():
        with torch.inference_mode():
            parts = []
            for j in range(0, len(eval_states), tc.batch_size):
                logits = upper_logits(model, eval_states[j:j + tc.batch_size], k, bc.pooling, rt,
                                      eval_doc_feats[j:j + tc.batch_size] if eval_doc_feats is not None
                                      else None)
                parts.append(soft_cross_entropy(logits, eval_targets[j:j + tc.batch_size],
                                                torch.ones(len(labels))))
        return float(torch.stack(parts).mean())

    head_params = [p for n, p in model.named_parameters() if p.requires_grad and HEAD in n]
    lora_params = [p for n, p in model.named_parameters() if p.requires_grad and HEAD not in n]
    groups = [{"params": lora_params},
              {"params": head_params, "lr": tc.learning_rate * bc.head_lr_multiplier}]
    task = Task([st.tokens for st in states], loss, lora_params + head_params,
                eval_loss if eval_states is not None else None, groups)
    history, metrics = fit(model, task, job, cfg, ctx, rt)
    metrics.update({"time/train_lower_states_s": lower_s, "time/train_document_means_s": docs_s,
                    "time/train_probe_s": probe_s, "train/split_layer": float(k),
                    "train/items": float(len(items))})
    return model, ClsMeta(labels, bc.pooling, k, bc.adapted_tokens, doc_n, doc_chunk), history, metrics


def predict_cls(model, meta: ClsMeta, prompts: Sequence[Sequence[int]], pad_id: int, rt,
                batch_size: int, cache: StateCache | None, progress: bool,
                docs: Sequence[Sequence[int]] | None = None, doc_cache: dict | None = None) -> list[dict]:
    """Head predictions: the argmax label, per-label log-probabilities as scores.

    ``docs``: the inputs' document token ids (required when ``meta.document_tokens`` > 0)."""
    import time

    from tqdm.auto import tqdm

    results: list[dict] = [{} for _ in prompts]
    with tqdm(total=2 * len(prompts), desc="lora_cls predict", unit="ex", disable=not progress,
              dynamic_ncols=True) as bar:
        t0 = time.perf_counter()
        states = lower_states(model, prompts, meta.split_layer, meta.adapted_tokens, pad_id, rt, batch_size,
                              cache, bar.update)
        doc_feats = None
        if meta.document_tokens > 0:
            if docs is None:
                raise ValueError("this lora_cls adapter reads document means: pass the inputs' document ids")
            doc_feats = document_features(model, docs, meta.document_chunk_tokens, pad_id, rt, doc_cache,
                                          progress)
        lower_dt = (time.perf_counter() - t0) / max(len(prompts), 1)
        if cache is not None:  # used once (the base pass kept them for this): free the memory
            for p in prompts:
                cache.pop(meta.split_layer, meta.adapted_tokens, p)
        with torch.inference_mode():
            for idx in _batches(prompts, batch_size):
                t1 = time.perf_counter()
                logp = torch.log_softmax(upper_logits(model, [states[i] for i in idx], meta.split_layer,
                                                      meta.pooling, rt,
                                                      doc_feats[idx] if doc_feats is not None else None),
                                         dim=-1).cpu()
                dt = (time.perf_counter() - t1) / len(idx) + lower_dt
                for row, i in enumerate(idx):
                    best = int(torch.argmax(logp[row]))
                    results[i] = {"raw_text": meta.labels[best], "latency_s": dt,
                                  "scores": {lab: float(logp[row, j]) for j, lab in enumerate(meta.labels)},
                                  "prompt_tokens": len(prompts[i]), "output_tokens": 0}
                bar.update(len(idx))
    return results
