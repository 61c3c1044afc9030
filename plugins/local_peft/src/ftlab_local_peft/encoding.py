"""Turn examples into token ids: truncated input → rendered prompt → (chat) prompt ids + target ids.

One continuation is used everywhere: the *target* of a label is ``tokens(label) + [end]``, where
``end`` is ``backend.end_token`` or the tokenizer's eos (``<|im_end|>`` for SmolLM2 and the tiny
model). Training learns it (loss on those tokens only), ``score_labels`` sums its log-probabilities
(the end token included unless ``backend.score_end_token`` is off) and ``generate`` stops at ``end``.
The label is tokenised on its own and appended to the prompt ids, so training and scoring see
exactly the same token sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ftlab.contract import cut_record

IGNORE_INDEX = -100


def cut_tokens(tokenizer, text: str, max_tokens: int, side: str = "right", tail: int = 0):
    """``(kept text, cut)``: at most ``max_tokens`` tokens of ``text`` (0 = all), and the cut made
    (``{"limit", "input", "kept", "side"}`` in tokens) or ``None`` when nothing was cut.

    ``right`` keeps the beginning, ``left`` the end, ``middle`` the first ``max_tokens - tail`` and
    the last ``tail`` tokens joined by :data:`ftlab.prompt.MIDDLE_MARK`. The cut is made in the
    original string at token boundaries (offset mapping), so the kept text is verbatim.
    """
    from ftlab.prompt import MIDDLE_MARK

    if max_tokens <= 0 or not text:
        return text, None
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    n = len(offsets)
    if n <= max_tokens:
        return text, None
    info = cut_record(max_tokens, n, side)
    if side == "left":
        return text[offsets[n - max_tokens][0]:], info
    if side == "middle":
        tail = min(max(tail, 0), max_tokens)
        head = text[: offsets[max_tokens - tail - 1][1]] if max_tokens > tail else ""
        return head + MIDDLE_MARK + (text[offsets[n - tail][0]:] if tail else ""), info
    return text[: offsets[max_tokens - 1][1]], info


def truncate_text(tokenizer, text: str, max_tokens: int, side: str = "right", tail: int = 0) -> str:
    """The kept text of :func:`cut_tokens`."""
    return cut_tokens(tokenizer, text, max_tokens, side, tail)[0]


def document_ids(tokenizer, text: str, max_tokens: int) -> list[int]:
    """The first ``max_tokens`` token ids of the raw input text (no prompt, no special tokens)."""
    return document_cut(tokenizer, text, max_tokens)[0]


def document_text(prompt, text: str) -> str:
    """The raw text the document context reads: the input within the host's character budget
    (``prompt.max_input_chars``), so a budgeted comparison cuts every backend's input alike."""
    return prompt.cut_input(text)[0]


def document_cut(tokenizer, text: str, max_tokens: int):
    """``(ids, cut)``: :func:`document_ids` and the cut made (``{"limit", "input", "kept", "side"}``
    in tokens, ``None`` when the whole text fits)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    cut = cut_record(max_tokens, len(ids), "right") if len(ids) > max_tokens else None
    return list(ids[:max_tokens]), cut


def end_token_id(tokenizer, end_token: str = "") -> int:
    """Id of the token that ends an answer (``end_token`` or the tokenizer's eos)."""
    if end_token:
        tid = tokenizer.convert_tokens_to_ids(end_token)
        if tid is None or tid == tokenizer.unk_token_id:
            raise ValueError(f"backend.end_token {end_token!r} is not a token of this tokenizer")
        return int(tid)
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos token; set backend.end_token")
    return int(tokenizer.eos_token_id)


def uses_chat(tokenizer, prompt) -> bool:
    return bool(prompt.use_chat_template and getattr(tokenizer, "chat_template", None))


def sent_prompt(tokenizer, prompt, text: str):
    """``(full prompt string, truncation)`` for one input: the host's character budget
    (``prompt.max_input_chars``), then ``prompt.max_input_tokens`` tokens, then the template, chat-wrapped
    with a generation prompt when enabled. ``truncation`` holds the cuts made (``chars``, ``tokens``)
    or is ``None``."""
    budgeted, chars = prompt.cut_input(text)
    kept, tokens = cut_tokens(tokenizer, budgeted, prompt.max_input_tokens, prompt.truncation_side,
                              getattr(prompt, "middle_tail", 0))
    user = prompt.fill(kept)
    cuts = {k: v for k, v in (("chars", chars), ("tokens", tokens)) if v}
    if uses_chat(tokenizer, prompt):
        messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
        messages.append({"role": "user", "content": user})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), cuts or None
    return user + "\n", cuts or None


def prompt_text(tokenizer, prompt, text: str) -> str:
    """The full prompt string for one input (chat-wrapped with a generation prompt when enabled)."""
    return sent_prompt(tokenizer, prompt, text)[0]


def text_ids(tokenizer, prompt, s: str) -> list[int]:
    """Token ids of a full prompt string (specials come from the template; bos added without it)."""
    ids = tokenizer(s, add_special_tokens=False)["input_ids"]
    if not uses_chat(tokenizer, prompt) and tokenizer.bos_token_id is not None \
            and getattr(tokenizer, "add_bos_token", False):
        ids = [tokenizer.bos_token_id] + ids
    return list(ids)


def prompt_ids(tokenizer, prompt, text: str) -> list[int]:
    """Token ids of :func:`prompt_text`."""
    return text_ids(tokenizer, prompt, prompt_text(tokenizer, prompt, text))


def label_ids(tokenizer, label: str, end_id: int, with_end: bool = True) -> list[int]:
    """The continuation for ``label``: its tokens, then the end token (if ``with_end``)."""
    ids = list(tokenizer(label, add_special_tokens=False)["input_ids"])
    return ids + [end_id] if with_end else ids


@dataclass(frozen=True)
class Feature:
    """One tokenised training example: prompt + target, loss only on the target."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)


def make_feature(tokenizer, prompt, text: str, label: str, end_id: int) -> Feature:
    p = prompt_ids(tokenizer, prompt, text)
    t = label_ids(tokenizer, label, end_id)
    return Feature(tuple(p + t), tuple([IGNORE_INDEX] * len(p) + t))


def make_features(tokenizer, prompt, examples: Sequence, end_id: int) -> list[Feature]:
    """Prompt + target per example: the label, or a generation task's reference (``Example.target``)."""
    return [make_feature(tokenizer, prompt, ex.text, ex.target, end_id) for ex in examples]


def collate(features: Sequence[Feature], pad_id: int, side: str = "right"):
    """Pad a batch to its longest member: (input_ids, attention_mask, labels) tensors."""
    import torch

    n = max(len(f) for f in features)
    ids = torch.full((len(features), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), n), dtype=torch.long)
    labels = torch.full((len(features), n), IGNORE_INDEX, dtype=torch.long)
    for i, f in enumerate(features):
        sl = slice(0, len(f)) if side == "right" else slice(n - len(f), n)
        ids[i, sl] = torch.tensor(f.input_ids)
        mask[i, sl] = 1
        labels[i, sl] = torch.tensor(f.labels)
    return ids, mask, labels
