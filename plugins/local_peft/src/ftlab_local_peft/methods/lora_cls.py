"""``train.method=lora_cls``: LoRA plus a linear head, trained on frozen context computed once.

The prompt is the one the base model is scored with (instruction, label list, truncated
transcript, chat template). It is split into a *context* (all but the last
``backend.adapted_tokens`` tokens) and the *adapted tokens* (the end of the instruction and the
assistant header, where the model would start its answer). The context is encoded once by the
frozen model; its keys and values at every tuned layer are kept
(:class:`~ftlab_local_peft.frozen.FrozenState`). Training and prediction then run only the adapted
tokens through the LoRA-adapted layers, attending to that cached context, and a linear head
(:mod:`~ftlab_local_peft.head`) reads the last adapted token (or their mean).

This is the model, not an approximation of one: context encoded by the base model, answer
positions by the adapted one, the same in training, in the tuned evaluation and in ``ftlab
predict``. It makes an epoch cost a few tokens per example instead of the whole prompt, so many
epochs fit in the time one full LoRA epoch takes; the one full forward per example is shared with
the base evaluation when it scored the same prompts (:mod:`~ftlab_local_peft.features`).
``adapted_tokens=0`` adapts every token (classic LoRA on the top ``backend.train_layers`` layers,
whose lower layers are then computed once).

The head is saved with the adapter through peft's ``modules_to_save``, so an adapter folder is
self-contained: ``ftlab_cls.json`` beside it names the labels, the pooling, the first tuned layer
and the adapted-token count.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ftlab_local_peft import encoding
from ftlab_local_peft.head import HEAD, attach_head, fit_probe, head_features, head_of, soft_cross_entropy, \
    upper_logits
from ftlab_local_peft.inference import length_batches, progress_bar
from ftlab_local_peft.loading import enum_value
from ftlab_local_peft.loop import Plan
from ftlab_local_peft.modeling import num_layers, split_layer
from ftlab_local_peft.weighting import class_weights

NAME = "lora_cls"
META_FILE = "ftlab_cls.json"


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


def document_ids(session, job, examples) -> list[list[int]] | None:
    """The document token ids of ``examples`` when the head reads document means, else None."""
    n_doc = session.cfg.backend.document_tokens
    if n_doc <= 0:
        return None
    return [encoding.document_ids(session.tokenizer, encoding.document_text(job.prompt, ex.text), n_doc)
            for ex in examples]


def prepare(session, job) -> Plan:
    """Attach a head, wrap the top layers with LoRA, tune on cached lower states."""
    from peft import LoraConfig, get_peft_model

    tc, bc = session.cfg.train, session.cfg.backend
    base, rt, pad_id, store = session.base, session.rt, session.pad_id, session.features
    keep = bool(getattr(job, "repeat", False))  # more trainings on these rows follow: keep their states
    labels = tuple(job.prompt.labels)
    k = split_layer(base, bc.train_layers)
    doc_n, doc_chunk = bc.document_tokens, bc.document_chunk_tokens
    attach_head(base, len(labels), bc.pooling, doc_n > 0)
    items = training_items(job, labels, enum_value(tc.multi_label))
    targets = torch.stack([t for _, t in items])
    weights = class_weights(targets, enum_value(tc.class_weighting))
    item_rows = [job.train[r] for r, _ in items]
    prompts = [encoding.prompt_ids(session.tokenizer, job.prompt, ex.text) for ex in item_rows]
    t0 = time.perf_counter()
    with progress_bar(len(items), "frozen context (once)", rt.progress) as bar:
        # the training rows' states live as long as training (~2 GB for 383 rows) unless folds follow
        states = store.prompt_states(base, prompts, k, bc.adapted_tokens, pad_id, rt, tc.batch_size * 2,
                                     keep=keep, progress=bar.update)
    if not keep:  # states kept by earlier folds: this training holds them now, the store lets go
        store.release(k, bc.adapted_tokens, prompts)
    lower_s = time.perf_counter() - t0
    eval_rows = list(job.eval) if tc.eval_loss else []
    t0 = time.perf_counter()
    docs_ids = document_ids(session, job, item_rows)
    docs = store.document_means(base, docs_ids, doc_chunk, pad_id, rt, rt.progress) if docs_ids else None
    eval_docs_ids = document_ids(session, job, eval_rows) if eval_rows else None
    eval_docs = store.document_means(base, eval_docs_ids, doc_chunk, pad_id, rt, rt.progress) \
        if eval_docs_ids else None
    docs_s = time.perf_counter() - t0
    probe_s = 0.0
    if enum_value(bc.head_init) == "probe":
        t1 = time.perf_counter()
        step = tc.batch_size * 2
        with torch.inference_mode():
            feats = torch.cat([head_features(base, states[j:j + step], k, bc.pooling, rt,
                                             docs[j:j + step] if docs is not None else None)
                               for j in range(0, len(states), step)])
        wt, bias = fit_probe(feats, targets, weights, bc.probe_c)
        head = head_of(base)
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
    if eval_rows:
        eval_targets = torch.zeros((len(eval_rows), len(labels)))
        for r, ex in enumerate(eval_rows):
            eval_targets[r, labels.index(ex.label)] = 1
        eval_prompts = [encoding.prompt_ids(session.tokenizer, job.prompt, ex.text) for ex in eval_rows]
        eval_states = store.prompt_states(model, eval_prompts, k, bc.adapted_tokens, pad_id, rt,
                                          tc.batch_size * 2, keep=False)

    def loss(idx):
        logits = upper_logits(model, [states[i] for i in idx], k, bc.pooling, rt,
                              docs[idx] if docs is not None else None)
        return soft_cross_entropy(logits, torch.stack([items[i][1] for i in idx]), weights), \
            sum(states[i].tokens for i in idx)

    def eval_loss():
        bs = tc.batch_size
        with torch.inference_mode():
            parts = [soft_cross_entropy(upper_logits(model, eval_states[j:j + bs], k, bc.pooling, rt,
                                                     eval_docs[j:j + bs] if eval_docs is not None else None),
                                        eval_targets[j:j + bs], torch.ones(len(labels)))
                     for j in range(0, len(eval_states), bs)]
        return float(torch.stack(parts).mean())

    head_params = [p for n, p in model.named_parameters() if p.requires_grad and HEAD in n]
    lora_params = [p for n, p in model.named_parameters() if p.requires_grad and HEAD not in n]
    groups = [{"params": lora_params},
              {"params": head_params, "lr": tc.learning_rate * bc.head_lr_multiplier}]
    meta = ClsMeta(labels, bc.pooling, k, bc.adapted_tokens, doc_n, doc_chunk)
    return Plan(model, [st.tokens for st in states], loss, lora_params + head_params,
                eval_loss if eval_states is not None else None, groups, save=meta.save,
                metrics={"time/train_lower_states_s": lower_s, "time/train_document_means_s": docs_s,
                         "time/train_probe_s": probe_s, "train/split_layer": float(k),
                         "train/items": float(len(items))})


def predict(model, meta: ClsMeta, prompts: Sequence[Sequence[int]], pad_id: int, rt, batch_size: int,
            store, docs: Sequence[Sequence[int]] | None = None, keep: bool = False) -> list[dict]:
    """Head predictions: the argmax label, per-label log-probabilities as scores.

    ``docs``: the inputs' document token ids (required when ``meta.document_tokens`` > 0). The
    prompts' frozen states come from ``store`` when kept there (and are released after, unless
    ``keep``: more predictions on these rows follow)."""
    results: list[dict] = [{} for _ in prompts]
    with progress_bar(2 * len(prompts), "lora_cls predict", rt.progress) as bar:
        t0 = time.perf_counter()
        states = store.prompt_states(model, prompts, meta.split_layer, meta.adapted_tokens, pad_id, rt,
                                     batch_size, keep=True, progress=bar.update)
        doc_feats = None
        if meta.document_tokens > 0:
            if docs is None:
                raise ValueError("this lora_cls adapter reads document means: pass the inputs' document ids")
            doc_feats = store.document_means(model, docs, meta.document_chunk_tokens, pad_id, rt, rt.progress)
        lower_dt = (time.perf_counter() - t0) / max(len(prompts), 1)
        if not keep:  # used once (the base pass kept them for this): free the memory
            store.release(meta.split_layer, meta.adapted_tokens, prompts)
        with torch.inference_mode():
            for idx in length_batches(prompts, batch_size):
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
