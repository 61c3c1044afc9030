"""Prediction: free generation, and label scoring in the same forward pass as the prompt.

``score_labels`` ranks every label by the summed log-probability of its continuation
(``tokens(label) + [end]``, see :mod:`ftlab_local_peft.encoding`) after the prompt. The label
continuations form a prefix tree; each prompt of a batch is followed by every tree node in one
sequence, with a 4D attention mask that lets a node see its prompt and its ancestors only and
position ids that restart after the prompt. One forward pass per batch therefore scores all
labels: the cost is the prefill plus one token per tree node (~1.2x the prompt-only forward for
17 MTSamples labels), with no KV-cache copies.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ftlab_local_peft.device import Runtime, autocast
from ftlab_local_peft.modeling import unwrap


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", disable=not enabled, dynamic_ncols=True)


def length_batches(prompts: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar prompt length (longest first), to limit padding."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    return [order[i:i + batch_size] for i in range(0, len(order), max(1, batch_size))]


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device):
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, n - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, n - len(s):] = 1
    return ids.to(device), mask.to(device)


CONTENT_FREE = ("N/A", "", "[MASK]")
"""Inputs with no content, for contextual calibration (Zhao et al., 2021)."""


@dataclass(frozen=True)
class LabelTrie:
    """The label continuations as a prefix tree: one node per distinct (prefix, token).

    ``tokens[j]``/``parent[j]``/``depth[j]`` describe node ``j`` (parent -1: its token follows
    the prompt directly); ``paths[i]`` lists the nodes of continuation ``i`` in order. Labels that
    share leading tokens share nodes, so every label is scored with one extra token per node.
    """

    tokens: tuple[int, ...]
    parent: tuple[int, ...]
    depth: tuple[int, ...]
    paths: tuple[tuple[int, ...], ...]

    @classmethod
    def build(cls, conts: Sequence[Sequence[int]]) -> "LabelTrie":
        index: dict[tuple[int, int], int] = {}
        tokens, parent, depth, paths = [], [], [], []
        for c in conts:
            if not c:
                raise ValueError("an empty label continuation cannot be scored")
            node, path = -1, []
            for d, t in enumerate(c):
                key = (node, int(t))
                if key not in index:
                    index[key] = len(tokens)
                    tokens.append(int(t))
                    parent.append(node)
                    depth.append(d)
                node = index[key]
                path.append(node)
            paths.append(tuple(path))
        return cls(tuple(tokens), tuple(parent), tuple(depth), tuple(paths))

    def ancestors(self) -> torch.Tensor:
        """``[n, n]`` bool: node ``q`` may attend to node ``k`` (``k`` is ``q`` or above it)."""
        n = len(self.tokens)
        m = torch.eye(n, dtype=torch.bool)
        for q in range(n):
            k = self.parent[q]
            while k >= 0:
                m[q, k] = True
                k = self.parent[k]
        return m


def common_prefix(prompts: Sequence[Sequence[int]], keep: int = 1) -> int:
    """Length of the token prefix shared by every prompt, leaving at least ``keep`` tokens of each.

    The instruction and the label list come before the transcript, so on MTSamples the chat
    header, the instruction and all 17 labels (~40% of a prompt) are identical in every prompt;
    they are computed once per call instead of once per example. Compared on token ids, so the
    result is exactly what tokenising each whole prompt gives.
    """
    if not prompts:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts) - keep
    i = 0
    while i < n and all(p[i] == first[i] for p in prompts):
        i += 1
    return max(i, 0)


@dataclass
class Prefix:
    """Keys and values of a shared prompt prefix at every layer (batch 1), computed once, and the
    sum of its tokens' final (normed) hidden states."""

    length: int
    layers: list
    final_sum: torch.Tensor
    by_split: dict = field(default_factory=dict)
    """Stacked keys/values from layer ``k`` on, per ``k`` (built by ``frozen._shared``)."""

    @classmethod
    def compute(cls, model, ids: Sequence[int], rt: "Runtime") -> "Prefix | None":
        if not ids:
            return None
        lm = unwrap(model)
        seen = {}
        hook = lm.model.norm.register_forward_hook(lambda _m, _i, o: seen.update(h=o.detach()))
        try:
            with rt.inference(), autocast(rt.device, rt.amp):
                out = model(input_ids=torch.tensor([list(ids)], device=rt.device), use_cache=True,
                            logits_to_keep=1)
        finally:
            hook.remove()
        kv = out.cache if hasattr(out, "cache") else out.past_key_values
        return cls(len(ids), [(lay.keys, lay.values) for lay in kv.layers], seen["h"][0].float().sum(0))

    def expand(self, b: int, config):
        """A fresh cache holding the prefix for ``b`` rows (the forward appends to it, not to us)."""
        from transformers import DynamicCache

        cache = DynamicCache(config=config)
        for i, (k, v) in enumerate(self.layers):
            cache.update(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1), i)
        return cache


def cache_kwarg(model) -> str:
    """Name of the forward argument taking a KV cache (``cache`` from transformers 5.2x on)."""
    import inspect

    base = unwrap(model)
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def packed_inputs(prompts: Sequence[Sequence[int]], trie: LabelTrie, pad_id: int, device, offset: int = 0):
    """One sequence per prompt: ``[left pad][prompt][every trie node]`` with a 4D mask.

    Prompts are left-padded so every row's trie starts at the same column. Prompt tokens attend
    causally to their own prompt; a trie node attends to its row's prompt and to its ancestors;
    positions restart after the prompt at ``prompt length + depth``. With ``offset`` (a shared
    prefix already in the cache), ``prompts`` are the rest after it: positions start at ``offset``
    and the mask gets ``offset`` leading key columns every row sees. Returns (ids, mask4d
    ``[b, 1, s, offset + s]`` bool, position ids, column of the last prompt token).
    """
    b, n = len(prompts), len(trie.tokens)
    p = max(len(x) for x in prompts)
    s = p + n
    ids = torch.full((b, s), pad_id, dtype=torch.long)
    real = torch.zeros((b, s), dtype=torch.bool)
    pos = torch.zeros((b, s), dtype=torch.long)
    depth = torch.tensor(trie.depth, dtype=torch.long)
    for i, x in enumerate(prompts):
        ids[i, p - len(x):p] = torch.tensor(list(x), dtype=torch.long)
        real[i, p - len(x):] = True
        pos[i, p - len(x):p] = offset + torch.arange(len(x))
        pos[i, p:] = offset + len(x) + depth
    ids[:, p:] = torch.tensor(trie.tokens, dtype=torch.long)
    allowed = torch.zeros((s, s), dtype=torch.bool)
    allowed[:p, :p] = torch.ones((p, p), dtype=torch.bool).tril()
    allowed[p:, :p] = True
    allowed[p:, p:] = trie.ancestors()
    mask = allowed[None] & real[:, None, :]
    mask |= torch.eye(s, dtype=torch.bool)[None]  # a padding row attends to itself (no empty row)
    if offset:
        mask = torch.cat([torch.ones((b, s, offset), dtype=torch.bool), mask], dim=-1)
    return ids.to(device), mask[:, None].to(device), pos.to(device), p - 1


def score_batch(model, prompts: Sequence[Sequence[int]], conts: Sequence[Sequence[int]],
                pad_id: int, rt: Runtime, trie: LabelTrie | None = None, on_cache=None,
                prefix: Prefix | None = None) -> torch.Tensor:
    """``[len(prompts), len(conts)]`` summed log-probabilities of each continuation after each prompt.

    One forward pass scores every label: the prompt and all label-trie nodes share the sequence
    (see :func:`packed_inputs`), and the vocabulary projection runs only where a label token is
    predicted (the last prompt token and every inner trie node). With ``on_cache``, the pass
    keeps its KV cache and calls ``on_cache(prompt width, cache)`` (prompts are left-padded to it;
    with a shared ``prefix``, its columns come first and ``prompts`` are the rest after it).
    """
    trie = trie or LabelTrie.build(conts)
    n0 = prefix.length if prefix is not None else 0
    ids, mask, pos, last = packed_inputs(prompts, trie, pad_id, rt.device, n0)
    p = last + 1
    extra = {}
    if prefix is not None:
        cfg = unwrap(model).config
        extra[cache_kwarg(model)] = prefix.expand(len(prompts), cfg)
    # the token of node j is predicted at its parent (or at the last prompt token)
    src = torch.tensor([last if q < 0 else p + q for q in trie.parent], dtype=torch.long)
    cols, where = torch.unique(src, return_inverse=True)
    with autocast(rt.device, rt.amp):
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos,
                    use_cache=on_cache is not None or prefix is not None, logits_to_keep=cols.to(rt.device),
                    **extra)
        if on_cache is not None:
            on_cache(p, out.cache if hasattr(out, "cache") else out.past_key_values)
    logp = torch.log_softmax(out.logits.float(), dim=-1)  # [b, len(cols), V]
    node_lp = logp[:, where.to(rt.device), torch.tensor(trie.tokens, device=rt.device)]  # [b, n]
    return torch.stack([node_lp[:, list(path)].sum(-1) for path in trie.paths], dim=1)


def naive_label_scores(model, prompt: Sequence[int], conts: Sequence[Sequence[int]],
                       rt: Runtime) -> list[float]:
    """Baseline: one full forward over ``prompt + continuation`` per label (tests, benchmark)."""
    res = []
    with autocast(rt.device, rt.amp):
        for c in conts:
            ids = torch.tensor([list(prompt) + list(c)], dtype=torch.long, device=rt.device)
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            tgt = ids[0, len(prompt):]
            res.append(float(logp[len(prompt) - 1:-1].gather(-1, tgt[:, None]).sum()))
    return res


def score_labels(model, prompts: Sequence[Sequence[int]], labels: Sequence[str],
                 conts: Sequence[Sequence[int]], pad_id: int, batch_size: int, rt: Runtime,
                 length_normalize: bool = False, prior: Sequence[float] | None = None,
                 on_cache=None, share_prefix: bool = True, keep_tokens: int = 1) -> list[dict]:
    """Best label per prompt: dicts with raw_text, scores, latency_s, prompt/output tokens.

    ``scores`` are the summed log-probabilities. The ranking divides them by the continuation's
    length when ``length_normalize`` and subtracts ``prior`` (a per-label log-probability, e.g.
    from a content-free prompt: contextual calibration) when given. ``on_cache(idx, prefix, width,
    cache)`` receives each pass's KV cache (the backend keeps the frozen states for a later
    lora_cls). The prompts' shared token prefix is computed once (``share_prefix``), leaving at
    least ``keep_tokens`` of each prompt to the batched passes.
    """
    results: list[dict] = [{} for _ in prompts]
    trie = LabelTrie.build(conts)
    lengths = torch.tensor([len(c) for c in conts], dtype=torch.float32)
    n0 = common_prefix(prompts, keep_tokens) if share_prefix else 0
    prefix = Prefix.compute(model, prompts[0][:n0], rt) if n0 else None
    with rt.inference(), progress_bar(len(prompts), "score_labels", rt.progress) as bar:
        for idx in length_batches(prompts, batch_size):
            t0 = time.perf_counter()
            keep = None if on_cache is None else (lambda w, c, idx=idx: on_cache(idx, prefix, w, c))
            s = score_batch(model, [prompts[i][n0:] for i in idx], conts, pad_id, rt, trie, keep,
                            prefix).cpu()
            rank = s / lengths if length_normalize else s
            if prior is not None:
                rank = rank - torch.tensor(list(prior), dtype=torch.float32)
            dt = (time.perf_counter() - t0) / len(idx)
            for row, i in enumerate(idx):
                best = int(torch.argmax(rank[row]))
                results[i] = {"raw_text": labels[best], "latency_s": dt,
                              "scores": {lab: float(s[row, j]) for j, lab in enumerate(labels)},
                              "prompt_tokens": len(prompts[i]), "output_tokens": len(conts[best])}
            bar.update(len(idx))
    return results


def cut_at_stop(text: str, stop) -> tuple[str, bool]:
    """``text`` up to the first of the ``stop`` strings (and whether one was found)."""
    cut = min((i for i in (text.find(x) for x in stop if x) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


@contextlib.contextmanager
def cast_once(model, enabled: bool):
    """Let bf16 autocast cast each frozen fp32 weight once per batch, not once per decoding step.

    autocast keeps its casts of fp32 weights for the whole autocast block, but only of weights that
    require grad (its training heuristic): a peft model's frozen base, i.e. every tuned evaluation,
    was cast again at every new token (~0.6 GB of memory traffic a step for SmolLM2-135M). The frozen
    floating-point parameters are flagged for the duration (no graph is recorded under
    ``inference_mode``) and restored after; the casts, hence the outputs, are the same.
    """
    flipped = [p for p in model.parameters() if enabled and not p.requires_grad and p.is_floating_point()]
    for p in flipped:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in flipped:
            p.requires_grad_(False)


def length_and_beam_kwargs(decoding) -> dict:
    """``generate`` keywords of the optional decoding keys: a minimum length, beam search."""
    kw = {}
    if getattr(decoding, "min_new_tokens", 0):
        kw["min_new_tokens"] = decoding.min_new_tokens
    if getattr(decoding, "num_beams", 1) > 1:
        kw.update(num_beams=decoding.num_beams, length_penalty=decoding.length_penalty)
    return kw


def generate(model, tokenizer, prompts: Sequence[Sequence[int]], end_id: int, pad_id: int,
             decoding, seed: int, rt: Runtime, synced: bool = False) -> list[dict]:
    """Greedy (temperature 0) or sampled (temperature/top-p, seeded) continuations: length-grouped,
    left-padded batches through ``generate`` with its KV cache; a batch stops when every row has
    produced the end token or a ``decoding.stop`` string; specials stripped, text cut at the stop."""
    results: list[dict] = [{} for _ in prompts]
    sample = decoding.temperature > 0
    stop = tuple(getattr(decoding, "stop", ()) or ())
    kw = dict(max_new_tokens=decoding.max_new_tokens, do_sample=sample, eos_token_id=end_id,
              pad_token_id=pad_id)
    if stop:
        kw.update(stop_strings=list(stop), tokenizer=tokenizer)
    if sample:
        kw.update(temperature=decoding.temperature, top_p=decoding.top_p, top_k=0)
    kw.update(length_and_beam_kwargs(decoding))
    torch.manual_seed(getattr(decoding, "seed", seed))  # sampling only; greedy decoding draws nothing
    if synced:  # a sharded model (fsdp): every rank steps until all have finished
        kw["synced_gpus"] = True
    with cast_once(model, rt.bf16 and not synced), rt.inference(), \
            progress_bar(len(prompts), "generate", rt.progress) as bar:
        for idx in length_batches(prompts, decoding.batch_size):
            t0 = time.perf_counter()
            ids, mask = left_pad([prompts[i] for i in idx], pad_id, rt.device)
            with autocast(rt.device, rt.amp):
                out = model.generate(input_ids=ids, attention_mask=mask, **kw)
            new = out[:, ids.shape[1]:].cpu().tolist()
            dt = (time.perf_counter() - t0) / len(idx)
            for row, i in enumerate(idx):
                text, n_out = finish_text(tokenizer, new[row], end_id, pad_id, stop)
                results[i] = {"raw_text": text, "latency_s": dt,
                              "prompt_tokens": len(prompts[i]), "output_tokens": n_out}
            bar.update(len(idx))
    return results


def per_row_generate(model, tokenizer, prompts: Sequence[Sequence[int]], end_id: int, pad_id: int,
                     decoding, rt: Runtime) -> list[list[int]]:
    """Baseline (tests, benchmark): a plain ``model.generate`` per prompt, no padding, greedy, the
    same stop strings and dtype as :func:`generate`; the new token ids of each row, as generated."""
    stop = tuple(getattr(decoding, "stop", ()) or ())
    kw = dict(max_new_tokens=decoding.max_new_tokens, do_sample=False, eos_token_id=end_id, pad_token_id=pad_id,
              **length_and_beam_kwargs(decoding))
    if stop:
        kw.update(stop_strings=list(stop), tokenizer=tokenizer)
    out = []
    with torch.inference_mode(), autocast(rt.device, rt.bf16):
        for p in prompts:
            ids = torch.tensor([list(p)], dtype=torch.long, device=rt.device)
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kw)
            out.append(gen[0, ids.shape[1]:].tolist())
    return out


def finish_text(tokenizer, toks: Sequence[int], end_id: int, pad_id: int, stop) -> tuple[str, int]:
    """(answer text, output tokens) of one row's new tokens: up to and with the end token, trailing
    padding dropped, specials stripped, the text cut at the first stop string."""
    toks = list(toks)
    n_out = toks.index(end_id) + 1 if end_id in toks else len(toks)
    while n_out > 0 and toks[n_out - 1] == pad_id and pad_id != end_id:
        n_out -= 1  # a row that stopped on a stop string is padded to the batch's length
    text, _ = cut_at_stop(tokenizer.decode(toks[:n_out], skip_special_tokens=True), stop)
    return text.strip(), n_out
