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

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from ftlab_local_peft.loading import autocast

HEAD = "ftlab_cls_head"
META_FILE = "ftlab_cls.json"
POOLINGS = ("last", "mean", "last_mean", "last_context")


def inner(model):
    """The decoder stack (``LlamaModel`` and friends) inside a causal LM or a peft wrapper."""
    m = model.get_base_model() if hasattr(model, "get_base_model") else model
    return m.model


def inner_lm(model):
    """The causal LM itself (``LlamaForCausalLM`` and friends), unwrapped from peft."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


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


@dataclass(frozen=True)
class FrozenState:
    """What the frozen part of the network produced for one prompt, reused by every epoch.

    The prompt is split into a *context* (every token but the last ``adapted_tokens``) and the
    *adapted* tokens. ``hidden`` is the adapted tokens' hidden state entering layer ``k``;
    ``keys``/``values`` are the context's keys and values (rotary embedding applied) at layers
    ``k..L-1``: ``[L-k, kv_heads, context, head_dim]``.
    """

    hidden: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    pooled: torch.Tensor
    """``[H]`` float32: the frozen model's final (normed) hidden state averaged over the whole prompt."""

    @property
    def tokens(self) -> int:
        return int(self.hidden.shape[0] + self.keys.shape[2])


def _split(n: int, adapted: int) -> int:
    """How many of a prompt's ``n`` tokens run through the adapted layers (the rest is context)."""
    return n if adapted <= 0 else min(adapted, n)


class StateCache:
    """:class:`FrozenState` per ``(k, adapted tokens, prompt ids)``, in the compute dtype."""

    def __init__(self):
        self._d: dict[tuple, FrozenState] = {}

    def get(self, k: int, adapted: int, ids: Sequence[int]):
        return self._d.get((k, adapted, tuple(ids)))

    def put(self, k: int, adapted: int, ids: Sequence[int], state: FrozenState) -> None:
        self._d[(k, adapted, tuple(ids))] = state

    def __len__(self) -> int:
        return len(self._d)

    def capture(self, model, k: int, adapted: int, prompts: Sequence[Sequence[int]]):
        """Keep each prompt's frozen state during a packed scoring pass over left-padded prompts.

        Returns ``(after_batch, remove)``: the pass hands its cache to ``after_batch(idx, prefix,
        width, cache)``: the cache holds the shared ``prefix`` (an ``inference.Prefix`` or None),
        then the rest of each prompt left-padded to ``width`` columns (the only columns the hooks see).
        """
        grab, final = _HiddenAt(model, k), _HiddenAt(model, -1)

        def after_batch(idx, prefix, width, kv_cache):
            for row, i in enumerate(idx):
                self.put(k, adapted, prompts[i], _extract(grab.hidden, final.hidden, kv_cache, row,
                                                          len(prompts[i]), prefix, width, k, adapted,
                                                          num_layers(model)))

        def remove():
            grab.remove()
            final.remove()

        return after_batch, remove


class _HiddenAt:
    """Forward hook keeping the hidden state entering layer ``k`` (the embeddings for ``k == 0``,
    the final norm's output for ``k == -1``)."""

    def __init__(self, model, k: int):
        dec = inner(model)
        mod = dec.norm if k == -1 else dec.embed_tokens if k == 0 else dec.layers[k - 1]
        self.hidden = None
        self._h = mod.register_forward_hook(self._hook)

    def _hook(self, _mod, _inp, out):
        self.hidden = (out[0] if isinstance(out, tuple) else out).detach()

    def remove(self) -> None:
        self._h.remove()


def _extract(hidden, final, kv_cache, row: int, n: int, prefix, width: int, k: int, adapted: int,
             n_layers: int) -> FrozenState:
    """Row ``row``'s state from a pass over [shared prefix][rest, left-padded to width]."""
    n0 = prefix.length if prefix is not None else 0
    s, m = _split(n, adapted), n - n0
    if s > m:
        raise ValueError(f"{s} adapted tokens reach into the shared prefix ({n0} of {n} tokens)")
    ctx = list(range(n0)) + list(range(n0 + width - m, n0 + width - s))
    keys = torch.stack([kv_cache.layers[l].keys[row, :, ctx] for l in range(k, n_layers)])
    values = torch.stack([kv_cache.layers[l].values[row, :, ctx] for l in range(k, n_layers)])
    total = final[row, width - m:width].float().sum(0)
    if prefix is not None:
        total = total + prefix.final_sum
    return FrozenState(hidden[row, width - s:width].clone(), keys.clone(), values.clone(), total / n)


def _left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device):
    n = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), n), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, n - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[r, n - len(p):] = 1
    return ids.to(device), mask.to(device), ((mask.cumsum(-1) - 1).clamp(min=0)).to(device)


def _length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), max(1, batch_size))]


def lower_states(model, prompts: Sequence[Sequence[int]], k: int, adapted: int, pad_id: int, rt,
                 batch_size: int, cache: StateCache | None = None,
                 progress: Callable[[int], None] | None = None) -> list[FrozenState]:
    """The :class:`FrozenState` of every prompt: one frozen forward pass each, or the cache's copy."""
    out: list = [None] * len(prompts)
    todo = []
    frozen = model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()
    for i, p in enumerate(prompts):
        hit = cache.get(k, adapted, p) if cache is not None else None
        if hit is not None:
            out[i] = hit
        else:
            todo.append(i)
    if progress and len(todo) < len(prompts):
        progress(len(prompts) - len(todo))
    n_layers = num_layers(model)
    from ftlab_local_peft.inference import Prefix, cache_kwarg, common_prefix

    todo_prompts = [prompts[i] for i in todo]
    n0 = common_prefix(todo_prompts, adapted) if adapted > 0 and len(todo) > 1 else 0
    grab, final = _HiddenAt(model, k), _HiddenAt(model, -1)
    try:
        with torch.inference_mode(), frozen, autocast(rt.device, rt.bf16):
            prefix = Prefix.compute(inner_lm(model), todo_prompts[0][:n0], rt) if n0 else None
            for idx in _length_batches([len(prompts[i]) for i in todo], batch_size):
                rows = [todo[j] for j in idx]
                ids, mask, pos = _left_pad([prompts[i][n0:] for i in rows], pad_id, rt.device)
                extra = {}
                if prefix is not None:
                    mask = torch.cat([torch.ones((len(rows), n0), dtype=mask.dtype, device=mask.device), mask], 1)
                    extra[cache_kwarg(model)] = prefix.expand(len(rows), inner(model).config)
                res = inner(model)(input_ids=ids, attention_mask=mask, position_ids=pos + n0, use_cache=True,
                                   **extra)
                kv = res.cache if hasattr(res, "cache") else res.past_key_values
                for r, i in enumerate(rows):
                    out[i] = _extract(grab.hidden, final.hidden, kv, r, len(prompts[i]), prefix, ids.shape[1],
                                      k, adapted, n_layers)
                    if cache is not None:
                        cache.put(k, adapted, prompts[i], out[i])
                if progress:
                    progress(len(rows))
    finally:
        grab.remove()
        final.remove()
    return out


def _cache_kwarg(dec) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(type(dec).forward).parameters else "past_key_values"


def upper_hidden(model, states: Sequence[FrozenState], k: int, rt):
    """The adapted tokens through layers ``k..L-1`` and the final norm: (``[b, s, H]`` float32, mask).

    Layout per row: ``[context, left-padded to the longest][adapted tokens, right-padded]``; a 4D
    mask lets an adapted token see its row's real context and the adapted tokens up to itself.
    """
    from transformers import DynamicCache

    b = len(states)
    c = max(int(st.keys.shape[2]) for st in states)
    s = max(int(st.hidden.shape[0]) for st in states)
    dev = rt.device
    ref = states[0]
    n_up, kvh, _, hd = ref.keys.shape
    x = ref.hidden.new_zeros((b, s, ref.hidden.shape[-1]))
    keys = ref.keys.new_zeros((n_up, b, kvh, c, hd))
    values = ref.values.new_zeros((n_up, b, kvh, c, hd))
    ctx_real = torch.zeros((b, c), dtype=torch.bool)
    suf_real = torch.zeros((b, s), dtype=torch.bool)
    pos = torch.zeros((b, s), dtype=torch.long)
    for r, st in enumerate(states):
        n_c, n_s = int(st.keys.shape[2]), int(st.hidden.shape[0])
        x[r, :n_s] = st.hidden
        keys[:, r, :, c - n_c:] = st.keys
        values[:, r, :, c - n_c:] = st.values
        ctx_real[r, c - n_c:] = True
        suf_real[r, :n_s] = True
        pos[r] = n_c + torch.arange(s)
    causal = torch.ones((s, s), dtype=torch.bool).tril()
    mask = torch.cat([ctx_real[:, None, :].expand(b, s, c), causal[None] & suf_real[:, None, :]], dim=-1)
    mask[:, torch.arange(s), c + torch.arange(s)] = True  # padding rows see themselves (no empty row)
    dec = inner(model)
    kv = DynamicCache(config=dec.config)
    for j in range(n_up):
        kv.update(keys[j].to(dev), values[j].to(dev), k + j)
    with layer_range(model, k, num_layers(model), final_norm=True) as stack, autocast(dev, rt.bf16):
        h = stack(inputs_embeds=x.to(dev), attention_mask=mask[:, None].to(dev), position_ids=pos.to(dev),
                  use_cache=True, **{_cache_kwarg(stack): kv}).last_hidden_state
    return h.float(), suf_real.to(dev)


def upper_logits(model, states: Sequence[FrozenState], k: int, pooling: str, rt) -> torch.Tensor:
    """``[b, n_labels]`` head logits (float32) over the pooled adapted tokens."""
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
    # parameter-free layer norm per part: the final states' scale is large and differs between the
    # parts, and a new zero-initialised head with a high learning rate diverged on the raw values
    feat = torch.cat([torch.nn.functional.layer_norm(x, x.shape[-1:]) for x in parts], dim=-1)
    return _head(model)(feat)


def _head(model):
    m = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(m, HEAD)


def attach_head(base, n_labels: int, pooling: str) -> None:
    """Give ``base`` a zero-initialised ``ftlab_cls_head`` (zero: the first step starts from uniform)."""
    if pooling not in POOLINGS:
        raise ValueError(f"backend.pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    width = base.config.hidden_size * (2 if pooling in ("last_mean", "last_context") else 1)
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

    def save(self, folder: Path) -> None:
        from ftlab.paths import atomic_write_text

        atomic_write_text(Path(folder) / META_FILE, json.dumps(
            {"method": "lora_cls", "labels": list(self.labels), "pooling": self.pooling,
             "split_layer": self.split_layer, "adapted_tokens": self.adapted_tokens}, indent=1))

    @classmethod
    def load(cls, folder: Path) -> "ClsMeta | None":
        f = Path(folder) / META_FILE
        if not f.is_file():
            return None
        d = json.loads(f.read_text())
        return cls(tuple(d["labels"]), d["pooling"], int(d["split_layer"]), int(d["adapted_tokens"]))


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
    with tqdm(total=len(items), desc="frozen context (once)", unit="ex",
              disable=not progress, dynamic_ncols=True) as bar:
        states = lower_states(model, [train_prompts[r] for r, _ in items], k, bc.adapted_tokens, pad_id, rt,
                              tc.batch_size * 2, cache, bar.update)
    lower_s = time.perf_counter() - t0
    eval_states = eval_targets = None
    if tc.eval_loss and eval_prompts:
        eval_targets = torch.zeros((len(job.eval), len(labels)))
        for r, ex in enumerate(job.eval):
            eval_targets[r, labels.index(ex.label)] = 1
        eval_states = lower_states(model, eval_prompts, k, bc.adapted_tokens, pad_id, rt, tc.batch_size * 2,
                                   cache)

    def loss(idx):
        logits = upper_logits(model, [states[i] for i in idx], k, bc.pooling, rt)
        return soft_cross_entropy(logits, torch.stack([items[i][1] for i in idx]), weights), \
            sum(states[i].tokens for i in idx)

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
    task = Task([st.tokens for st in states], loss, lora_params + head_params,
                eval_loss if eval_states is not None else None, groups)
    history, metrics = fit(model, task, job, cfg, ctx, rt)
    metrics.update({"time/train_lower_states_s": lower_s, "train/split_layer": float(k),
                    "train/items": float(len(items))})
    return model, ClsMeta(labels, bc.pooling, k, bc.adapted_tokens), history, metrics


def predict_cls(model, meta: ClsMeta, prompts: Sequence[Sequence[int]], pad_id: int, rt,
                batch_size: int, cache: StateCache | None, progress: bool) -> list[dict]:
    """Head predictions: the argmax label, per-label log-probabilities as scores."""
    import time

    from tqdm.auto import tqdm

    results: list[dict] = [{} for _ in prompts]
    with tqdm(total=2 * len(prompts), desc="lora_cls predict", unit="ex", disable=not progress,
              dynamic_ncols=True) as bar:
        t0 = time.perf_counter()
        states = lower_states(model, prompts, meta.split_layer, meta.adapted_tokens, pad_id, rt, batch_size,
                              cache, bar.update)
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
