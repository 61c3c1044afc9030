"""Entry point module: the ``extractive`` config schema and factory (imports only ftlab and the stdlib)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List

from ftlab import hookimpl
from ftlab.config import BackendConfig
from ftlab.contract import Capabilities, Fallback


class Unit(Enum):
    words = "words"  # the first k whitespace-separated words
    sentences = "sentences"  # the first k sentences (ftlab's NLTK-free splitter)


@dataclass
class ExtractiveConfig(BackendConfig):
    """Options of the lead-k floor: answer with the beginning of the input (no model, no prompt)."""

    name: str = "extractive"
    """Backend name."""
    unit: Unit = Unit.words
    """What k counts: words or sentences."""
    k: int = 20
    """The base model's k (train.method=none); training chooses its own k among `choices`."""
    choices: List[int] = field(default_factory=lambda: [5, 10, 15, 20, 25, 30, 40, 60])
    """Candidate k values training tries on the training split."""
    select_on: str = "rougeL_f1"
    """The per-example metric key training maximises (mean over the training rows): a key of a
    registered text metric, e.g. rougeL_f1, rouge1_f1, token_f1."""

    def __post_init__(self) -> None:
        if self.k < 1 or not self.choices or min(self.choices) < 1:
            raise ValueError("backend.k and every backend.choices value must be at least 1")


def _factory(cfg, ctx):
    from ftlab_extractive.backend import ExtractiveBackend

    return ExtractiveBackend(cfg, ctx)


_FIT = ("extractive has no model to tune: train picks k (backend.choices) that maximises backend.select_on "
        "on the training split")
CAPABILITIES = Capabilities(
    decoding_modes=("generate",), train_methods=("none",),
    fallbacks=(Fallback("train.method", "lora", "choose_k", _FIT),),
    tasks=("text_generation", "summarization", "question_answering"), generation_methods=("none", "lora"),
    train_keys={"method": "none answers with backend.k; lora (fallback) chooses k on the training split"})
"""Generation tasks only (a classification task fails at validation naming both); train.method=none
keeps backend.k, lora falls back to choosing k on the training split (recorded as a tag)."""


@hookimpl
def ftlab_register_backends(register):
    register("extractive", _factory, ExtractiveConfig, CAPABILITIES)
