"""One prompt template and one answer parser, shared by every backend.

The parser maps generated text to one configured label, or to ``<unparseable>``:

1. strip wrappers: leading ``Answer:``/``Specialty:``/``Label:``, an option letter (``B.``, ``(b)``),
   quotes and trailing punctuation;
2. exact match after normalisation (case, runs of spaces, spaces around ``/`` and ``-``);
3. the text *mentions* labels or a label's unique part (word-bounded; ``ENT`` or ``Otolaryngology``
   of ``ENT - Otolaryngology``): exactly one distinct label → that label;
4. else the text is a prefix (≥ 4 characters) of exactly one label (a truncated generation);
5. anything else, and any text naming **two different labels**, is ``<unparseable>``: picking the
   first would reward a model that lists several answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

from ftlab.contract import UNPARSEABLE, cut_record

_PREFIX = re.compile(
    r"^\s*(?:(?:the\s+)?(?:final\s+)?(?:answer|specialty|speciality|label|category|class)"
    r"(?:\s+is)?\s*[:\-]?\s*)+",
    re.IGNORECASE,
)
_OPTION = re.compile(r"^\s*(?:\(?[A-Za-z]\)|[A-Za-z][.:])\s+")
_SPLIT_PARTS = re.compile(r"\s+[/\-]\s+|\s*/\s*")


def normalise(text: str) -> str:
    """Lower-case, collapse spaces, remove spaces around ``/`` and `` - ``, trim punctuation."""
    t = text.casefold().replace("\u2013", "-").replace("\u2014", "-")
    t = re.sub(r"\s*/\s*", "/", t)
    t = re.sub(r"\s+-\s+", "-", t)
    t = re.sub(r"\s+", " ", t)
    return t.strip(" \t\n\"'`*.,;:!?")


def _mentions(haystack: str, needle: str) -> list[tuple[int, int]]:
    pattern = r"(?<![a-z0-9])" + re.escape(needle) + r"(?![a-z0-9])"
    return [(m.start(), m.end()) for m in re.finditer(pattern, haystack)]


@lru_cache(maxsize=64)
def _label_tables(labels: tuple[str, ...]):
    full = {normalise(lab): lab for lab in labels}
    parts: dict[str, set[str]] = {}
    for lab in labels:
        pieces = [p for p in _SPLIT_PARTS.split(lab) if p.strip()]
        if len(pieces) < 2:
            continue
        for piece in pieces:
            key = normalise(piece)
            if len(key) >= 3:
                parts.setdefault(key, set()).add(lab)
    unique_parts = {k: next(iter(v)) for k, v in parts.items() if len(v) == 1 and k not in full}
    return full, unique_parts


def _distinct_mentions(text: str, table: dict[str, str]) -> set[str]:
    spans = []
    for key, lab in table.items():
        spans += [(s, e, lab) for s, e in _mentions(text, key)]
    # a mention inside a longer mention (e.g. a part of a full label) does not count twice
    kept = [a for a in spans if not any(b is not a and b[0] <= a[0] and a[1] <= b[1]
                                        and (b[1] - b[0]) > (a[1] - a[0]) for b in spans)]
    return {lab for _, _, lab in kept}


def parse_answer(text: str, labels: Sequence[str]) -> str:
    """Map a model's answer to one of ``labels`` or ``UNPARSEABLE`` (rules in the module doc)."""
    if not text or not text.strip():
        return UNPARSEABLE
    full, parts = _label_tables(tuple(labels))
    first_line = text.strip().splitlines()[0]
    for candidate in (text, first_line):
        t = _OPTION.sub("", _PREFIX.sub("", candidate.strip()))
        n = normalise(t)
        if not n:
            continue
        if n in full:
            return full[n]
        found = _distinct_mentions(n, {**parts, **full})
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            return UNPARSEABLE
        if len(n) >= 4:
            starts = {lab for key, lab in full.items() if key.startswith(n)}
            if len(starts) == 1:
                return starts.pop()
    return UNPARSEABLE


MIDDLE_MARK = "\n[...]\n"
"""What replaces the cut part of a text truncated on the ``middle`` side."""


def cut(text: str, keep: int, side: str, tail: int = 0) -> str:
    """At most ``keep`` characters of ``text`` (plus the mark): the head (``right``), the end
    (``left``), or ``keep - tail`` from the head and ``tail`` from the end (``middle``)."""
    if keep <= 0 or len(text) <= keep:
        return text
    if side == "left":
        return text[len(text) - keep:]
    if side == "middle":
        tail = min(tail, keep)
        return text[:keep - tail] + MIDDLE_MARK + (text[len(text) - tail:] if tail else "")
    return text[:keep]


@dataclass(frozen=True)
class Prompt:
    """Renders the instruction, the label list and the input text; one object per run."""

    template: str
    labels: tuple[str, ...]
    label_line: str = "- {label}"
    system: str = ""
    max_input_tokens: int = 256
    max_input_chars: int = 0
    truncation_side: str = "right"
    middle_tail: int = 64
    use_chat_template: bool = True

    @property
    def label_block(self) -> str:
        return "\n".join(self.label_line.format(label=lab) for lab in self.labels)

    def cut_input(self, text: str) -> tuple[str, Optional[dict]]:
        """``text`` within the host's character budget (``max_input_chars``, 0 = none), and the cut
        made (``{"limit", "input", "kept", "side"}`` in characters) or ``None``."""
        if not self.max_input_chars or len(text) <= self.max_input_chars:
            return text, None
        kept = cut(text, self.max_input_chars, self.truncation_side, self.middle_tail)
        return kept, cut_record(self.max_input_chars, len(text), self.truncation_side)

    def render(self, text: str) -> str:
        """The user message for one input: the host's character budget applied, then the template."""
        return self.fill(self.cut_input(text)[0])

    def fill(self, text: str) -> str:
        """The template around ``text`` as given (a backend that cuts further, e.g. to a token budget,
        applies :meth:`cut_input` first, then its own cut, then this)."""
        return self.template.format(labels=self.label_block, text=text)

    def parse(self, answer: str) -> str:
        return parse_answer(answer, self.labels)

    @property
    def sha256(self) -> str:
        """Hash of everything that changes what the model sees."""
        key = "\x1f".join([self.template, self.label_line, self.system, *self.labels,
                           str(self.max_input_tokens), str(self.max_input_chars),
                           self.truncation_side, str(self.use_chat_template)]
                        + ([str(self.middle_tail)] if self.truncation_side == "middle" else []))
        return hashlib.sha256(key.encode()).hexdigest()


def make_prompt(prompt_cfg, labels: Sequence[str]) -> Prompt:
    """Build the run's :class:`Prompt` from ``cfg.prompt`` (same field names) and the label set."""
    fields = {f.name for f in dataclasses.fields(Prompt)} - {"labels"}
    return Prompt(labels=tuple(labels), **{k: getattr(prompt_cfg, k) for k in fields})
