"""Prediction: free generation and label scoring over a shared-prefix KV cache.

``score_labels`` ranks every label by the summed log-probability of its continuation
(``tokens(label) + [end]``, see :mod:`ftlab_local_peft.encoding`) after the prompt. Each batch of
prompts is prefilled once (left padding, explicit position ids); the cache is repeated once per
label (``batch_repeat_interleave``) and all label continuations go through one more forward pass.
The repeated cache holds ``prompts x labels`` rows, so a prompt batch is capped at
``MAX_LABEL_ROWS // len(labels)`` prompts (17 labels x 8 prompts x 410 tokens would copy ~2.5 GB).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from ftlab_local_peft.loading import autocast

MAX_LABEL_ROWS = 32
"""Upper bound on prompts x labels rows per scoring pass (17 labels: one prompt; measured fastest on CPU)."""


@dataclass(frozen=True)
class Runtime:
    """How to run the model (device, autocast, progress bar)."""

    device: torch.device
    bf16: bool = False
    progress: bool = True


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", disable=not enabled, dynamic_ncols=True)


def _batches(prompts: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar prompt length (longest first), to limit padding."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    return [order[i:i + batch_size] for i in range(0, len(order), max(1, batch_size))]


def _left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device):
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, n - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, n - len(s):] = 1
    return ids.to(device), mask.to(device)


def cache_kwarg(model) -> str:
    """Name of the forward argument taking a KV cache (``cache`` from transformers 5.2x on)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def score_batch(model, prompts: Sequence[Sequence[int]], conts: Sequence[Sequence[int]],
                pad_id: int, rt: Runtime) -> torch.Tensor:
    """``[len(prompts), len(conts)]`` summed log-probabilities of each continuation after each prompt."""
    b, n = len(prompts), len(conts)
    ids, pmask = _left_pad(prompts, pad_id, rt.device)
    pos = (pmask.cumsum(-1) - 1).clamp(min=0)
    lc = max(len(c) for c in conts)
    cont = torch.full((n, lc), pad_id, dtype=torch.long)
    cmask = torch.zeros((n, lc), dtype=torch.long)
    for i, c in enumerate(conts):
        cont[i, :len(c)] = torch.tensor(list(c), dtype=torch.long)
        cmask[i, :len(c)] = 1
    cont, cmask = cont.to(rt.device), cmask.to(rt.device)
    with autocast(rt.device, rt.bf16):
        out = model(input_ids=ids, attention_mask=pmask, position_ids=pos, use_cache=True,
                    logits_to_keep=1)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # [b, V]
        scores = first[:, cont[:, 0]]  # [b, n]
        if lc > 1:
            cache = out.cache if hasattr(out, "cache") else out.past_key_values
            cache.batch_repeat_interleave(n)  # rows: example-major, label-minor
            inp = cont[:, :-1].repeat(b, 1)
            mask = torch.cat([pmask.repeat_interleave(n, 0), cmask[:, :-1].repeat(b, 1)], dim=1)
            start = pmask.sum(-1).repeat_interleave(n)[:, None]
            cpos = start + torch.arange(lc - 1, device=rt.device)[None]
            out2 = model(input_ids=inp, attention_mask=mask, position_ids=cpos,
                         use_cache=True, **{cache_kwarg(model): cache})
            logits = out2.logits.float()
            tgt = cont[:, 1:].repeat(b, 1)
            tok = logits.gather(-1, tgt[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
            tok = tok * cmask[:, 1:].repeat(b, 1)
            scores = scores + tok.sum(-1).view(b, n)
    return scores


def naive_label_scores(model, prompt: Sequence[int], conts: Sequence[Sequence[int]],
                       rt: Runtime) -> list[float]:
    """Baseline: one full forward over ``prompt + continuation`` per label (tests, benchmark)."""
    res = []
    with autocast(rt.device, rt.bf16):
        for c in conts:
            ids = torch.tensor([list(prompt) + list(c)], dtype=torch.long, device=rt.device)
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            tgt = ids[0, len(prompt):]
            res.append(float(logp[len(prompt) - 1:-1].gather(-1, tgt[:, None]).sum()))
    return res


def score_labels(model, prompts: Sequence[Sequence[int]], labels: Sequence[str],
                 conts: Sequence[Sequence[int]], pad_id: int, batch_size: int, rt: Runtime,
                 length_normalize: bool = False) -> list[dict]:
    """Best label per prompt: dicts with raw_text, scores, latency_s, prompt/output tokens."""
    results: list[dict] = [{} for _ in prompts]
    lengths = torch.tensor([len(c) for c in conts], dtype=torch.float32)
    with torch.inference_mode(), _progress(len(prompts), "score_labels", rt.progress) as bar:
        for idx in _batches(prompts, min(batch_size, max(1, MAX_LABEL_ROWS // len(conts)))):
            t0 = time.perf_counter()
            s = score_batch(model, [prompts[i] for i in idx], conts, pad_id, rt).cpu()
            rank = s / lengths if length_normalize else s
            dt = (time.perf_counter() - t0) / len(idx)
            for row, i in enumerate(idx):
                best = int(torch.argmax(rank[row]))
                results[i] = {"raw_text": labels[best], "latency_s": dt,
                              "scores": {lab: float(s[row, j]) for j, lab in enumerate(labels)},
                              "prompt_tokens": len(prompts[i]), "output_tokens": len(conts[best])}
            bar.update(len(idx))
    return results


def generate(model, tokenizer, prompts: Sequence[Sequence[int]], end_id: int, pad_id: int,
             decoding, seed: int, rt: Runtime) -> list[dict]:
    """Greedy (temperature 0) or sampled continuations, left-padded batches, specials stripped."""
    results: list[dict] = [{} for _ in prompts]
    sample = decoding.temperature > 0
    kw = dict(max_new_tokens=decoding.max_new_tokens, do_sample=sample, eos_token_id=end_id,
              pad_token_id=pad_id)
    if sample:
        kw.update(temperature=decoding.temperature, top_p=decoding.top_p, top_k=0)
    torch.manual_seed(seed)
    with torch.inference_mode(), _progress(len(prompts), "generate", rt.progress) as bar:
        for idx in _batches(prompts, decoding.batch_size):
            t0 = time.perf_counter()
            ids, mask = _left_pad([prompts[i] for i in idx], pad_id, rt.device)
            with autocast(rt.device, rt.bf16):
                out = model.generate(input_ids=ids, attention_mask=mask, **kw)
            new = out[:, ids.shape[1]:].cpu().tolist()
            dt = (time.perf_counter() - t0) / len(idx)
            for row, i in enumerate(idx):
                toks = new[row]
                n_out = toks.index(end_id) + 1 if end_id in toks else len(toks)
                text = tokenizer.decode(toks[:n_out], skip_special_tokens=True)
                results[i] = {"raw_text": text.strip(), "latency_s": dt,
                              "prompt_tokens": len(prompts[i]), "output_tokens": n_out}
            bar.update(len(idx))
    return results
