"""Frozen context, adapted tokens: the machinery under ``train.method=lora_cls``.

A prompt is split into a *context* (all but its last ``adapted`` tokens) and the *adapted tokens*.
:func:`lower_states` runs the frozen model once over each prompt and keeps a :class:`FrozenState`:
the context's keys and values at every tuned layer, the adapted tokens' hidden state entering the
first tuned layer, and the final states' mean over the prompt. :func:`upper_hidden` then runs only
the adapted tokens through the (LoRA-adapted) top of the stack, attending to the cached context.
Without an adapter the two together reproduce the full forward exactly (tested). The prompts'
shared token prefix is computed once per call (``inference.Prefix``), and a packed ``score_labels``
pass can hand its cache to :meth:`ftlab_local_peft.features.StateCache.capture`, so the base evaluation's forward is reused.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ftlab_local_peft.device import autocast
from ftlab_local_peft.inference import Prefix, cache_kwarg, common_prefix, left_pad, length_batches
from ftlab_local_peft.modeling import decoder, num_layers, unwrap


@contextlib.contextmanager
def layer_range(model, start: int, stop: int, final_norm: bool):
    """Run only decoder layers ``start..stop-1`` (and the final norm if ``final_norm``).

    Swaps the stack's ``layers`` list (the same module objects) and restores it on exit; with
    ``start > 0`` the forward's ``inputs_embeds`` is the hidden state entering layer ``start``.
    """
    dec = decoder(model)
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
    ``k..L-1``: ``[L-k, kv_heads, context, head_dim]``. When the prompts of a call share a token
    prefix, its keys and values are held once (``shared_keys``/``shared_values``, the same tensors
    for every state of that call) and ``keys``/``values`` hold only the rest of the context.
    """

    hidden: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    pooled: torch.Tensor
    """``[H]`` float32: the frozen model's final (normed) hidden state averaged over the whole prompt."""
    shared_keys: torch.Tensor | None = None
    shared_values: torch.Tensor | None = None

    @property
    def context(self) -> int:
        own = int(self.keys.shape[2])
        return own + (int(self.shared_keys.shape[2]) if self.shared_keys is not None else 0)

    @property
    def tokens(self) -> int:
        return int(self.hidden.shape[0]) + self.context


def _split(n: int, adapted: int) -> int:
    """How many of a prompt's ``n`` tokens run through the adapted layers (the rest is context)."""
    return n if adapted <= 0 else min(adapted, n)


class HiddenAt:
    """Forward hook keeping the hidden state entering layer ``k`` (the embeddings for ``k == 0``,
    the final norm's output for ``k == -1``)."""

    def __init__(self, model, k: int):
        dec = decoder(model)
        mod = dec.norm if k == -1 else dec.embed_tokens if k == 0 else dec.layers[k - 1]
        self.hidden = None
        self._h = mod.register_forward_hook(self._hook)

    def _hook(self, _mod, _inp, out):
        self.hidden = (out[0] if isinstance(out, tuple) else out).detach()

    def remove(self) -> None:
        self._h.remove()


def extract_state(hidden, final, kv_cache, row: int, n: int, prefix, width: int, k: int, adapted: int,
             n_layers: int) -> FrozenState:
    """Row ``row``'s state from a pass over [shared prefix][rest, left-padded to width]."""
    n0 = prefix.length if prefix is not None else 0
    s, m = _split(n, adapted), n - n0
    if s > m:
        raise ValueError(f"{s} adapted tokens reach into the shared prefix ({n0} of {n} tokens)")
    ctx = slice(n0 + width - m, n0 + width - s)
    keys = torch.stack([kv_cache.layers[l].keys[row, :, ctx] for l in range(k, n_layers)])
    values = torch.stack([kv_cache.layers[l].values[row, :, ctx] for l in range(k, n_layers)])
    total = final[row, width - m:width].float().sum(0)
    shared = (None, None)
    if prefix is not None:
        total = total + prefix.final_sum
        shared = _shared(prefix, k)
    return FrozenState(hidden[row, width - s:width].clone(), keys, values, total / n, *shared)


def _shared(prefix, k: int):
    """The prefix's keys and values at layers ``k..``, built once per prefix and layer split."""
    got = prefix.by_split.get(k)
    if got is None:
        got = (torch.stack([kk[0] for kk, _ in prefix.layers[k:]]),
               torch.stack([vv[0] for _, vv in prefix.layers[k:]]))
        prefix.by_split[k] = got
    return got


def lower_states(model, prompts: Sequence[Sequence[int]], k: int, adapted: int, pad_id: int, rt,
                 batch_size: int, cache=None,
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
    todo_prompts = [prompts[i] for i in todo]
    n0 = common_prefix(todo_prompts, adapted) if adapted > 0 and len(todo) > 1 else 0
    grab, final = HiddenAt(model, k), HiddenAt(model, -1)
    try:
        with torch.inference_mode(), frozen, autocast(rt.device, rt.amp):
            prefix = Prefix.compute(unwrap(model), todo_prompts[0][:n0], rt) if n0 else None
            for idx in length_batches([prompts[i] for i in todo], batch_size):
                rows = [todo[j] for j in idx]
                ids, mask = left_pad([prompts[i][n0:] for i in rows], pad_id, rt.device)
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                extra = {}
                if prefix is not None:
                    mask = torch.cat([torch.ones((len(rows), n0), dtype=mask.dtype, device=mask.device), mask], 1)
                    extra[cache_kwarg(model)] = prefix.expand(len(rows), decoder(model).config)
                res = decoder(model)(input_ids=ids, attention_mask=mask, position_ids=pos + n0, use_cache=True,
                                   **extra)
                kv = res.cache if hasattr(res, "cache") else res.past_key_values
                for r, i in enumerate(rows):
                    out[i] = extract_state(grab.hidden, final.hidden, kv, r, len(prompts[i]), prefix, ids.shape[1],
                                      k, adapted, n_layers)
                    if cache is not None:
                        cache.put(k, adapted, prompts[i], out[i])
                if progress:
                    progress(len(rows))
    finally:
        grab.remove()
        final.remove()
    return out


def upper_hidden(model, states: Sequence[FrozenState], k: int, rt):
    """The adapted tokens through layers ``k..L-1`` and the final norm: (``[b, s, H]`` float32, mask).

    Layout per row: ``[context, left-padded to the longest][adapted tokens, right-padded]``; a 4D
    mask lets an adapted token see its row's real context and the adapted tokens up to itself.
    """
    from transformers import DynamicCache

    b = len(states)
    c = max(st.context for st in states)
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
        n_c, n_s, own = st.context, int(st.hidden.shape[0]), int(st.keys.shape[2])
        x[r, :n_s] = st.hidden
        keys[:, r, :, c - own:] = st.keys
        values[:, r, :, c - own:] = st.values
        if st.shared_keys is not None:
            keys[:, r, :, c - n_c:c - own] = st.shared_keys
            values[:, r, :, c - n_c:c - own] = st.shared_values
        ctx_real[r, c - n_c:] = True
        suf_real[r, :n_s] = True
        pos[r] = n_c + torch.arange(s)
    causal = torch.ones((s, s), dtype=torch.bool).tril()
    mask = torch.cat([ctx_real[:, None, :].expand(b, s, c), causal[None] & suf_real[:, None, :]], dim=-1)
    mask[:, torch.arange(s), c + torch.arange(s)] = True  # padding rows see themselves (no empty row)
    dec = decoder(model)
    kv = DynamicCache(config=dec.config)
    for j in range(n_up):
        kv.update(keys[j].to(dev), values[j].to(dev), k + j)
    with layer_range(model, k, num_layers(model), final_norm=True) as stack, autocast(dev, rt.amp):
        h = stack(inputs_embeds=x.to(dev), attention_mask=mask[:, None].to(dev), position_ids=pos.to(dev),
                  use_cache=True, **{cache_kwarg(model): kv}).last_hidden_state
    return h.float(), suf_real.to(dev)


def document_means(model, docs: Sequence[Sequence[int]], chunk: int, pad_id: int, rt,
                   batch_tokens: int = 4096,
                   progress: Callable[[int], None] | None = None, layers: Sequence[int] = ()) -> torch.Tensor:
    """``[n, H * len(layers)]`` float32: the frozen model's hidden states averaged over each document,
    one block of ``H`` per entry of ``layers`` (``i`` = the output of decoder layer ``i``, 1-based;
    ``0`` or the layer count = the final normed states, the only block when ``layers`` is empty).

    A document (token ids of the raw input, no prompt) is cut into chunks of ``chunk`` tokens that
    are encoded independently (attention stays inside a chunk, so the cost is linear in the length);
    the mean is over every token of every chunk. Chunks of all documents are sorted by length and
    batched (right-padded, about ``batch_tokens`` tokens a batch). An empty document gives zeros.
    ``progress`` is called with the number of documents finished.
    """
    if chunk <= 0:
        raise ValueError(f"backend.document_chunk_tokens must be positive, not {chunk}")
    dec = decoder(model)
    hidden = dec.config.hidden_size
    n_layers = len(dec.layers)
    picks = [n_layers if li in (0, n_layers) else int(li) for li in (layers or (n_layers,))]
    bad = [li for li in picks if not 1 <= li <= n_layers]
    if bad:
        raise ValueError(f"backend.document_layers: layer {bad[0]} is not in 1..{n_layers} (0 = the final states)")
    pieces = [(d, list(ids[s:s + chunk])) for d, ids in enumerate(docs) for s in range(0, len(ids), chunk)]
    left = [0] * len(docs)
    for d, _ in pieces:
        left[d] += 1
    if progress:
        progress(sum(1 for n in left if n == 0))
    sums = torch.zeros((len(docs), hidden * len(picks)))
    counts = torch.zeros(len(docs))
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i][1]))
    frozen = model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()
    with torch.inference_mode(), frozen, autocast(rt.device, rt.amp):
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and (stop - start + 1) * len(pieces[order[stop]][1]) <= batch_tokens:
                stop += 1
            idx = order[start:stop]
            width = len(pieces[idx[-1]][1])
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                t = pieces[i][1]
                ids[r, :len(t)] = torch.tensor(t)
                mask[r, :len(t)] = 1
            out = dec(input_ids=ids.to(rt.device), attention_mask=mask.to(rt.device), use_cache=False,
                      output_hidden_states=picks != [n_layers])
            states = [out.last_hidden_state if li == n_layers else out.hidden_states[li] for li in picks]
            m = mask.to(rt.device)[..., None]
            part = torch.cat([(h.float() * m).sum(1) for h in states], dim=-1).cpu()
            done = 0
            for r, i in enumerate(idx):
                d = pieces[i][0]
                sums[d] += part[r]
                counts[d] += len(pieces[i][1])
                left[d] -= 1
                done += left[d] == 0
            if progress and done:
                progress(done)
            start = stop
    return sums / counts.clamp(min=1)[:, None]
