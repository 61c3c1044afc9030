"""Schema of the ``eval`` group: which splits, how answers are produced, statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List

from ftlab.config.bounds import at_least, within


class DecodingMode(Enum):
    generate = "generate"  # free generation, then the host's answer parser
    score_labels = "score_labels"  # rank label strings by log-likelihood after the prompt


@dataclass
class DecodingConfig:
    """How a backend produces answers."""

    mode: DecodingMode = DecodingMode.score_labels
    """generate or score_labels. Each backend declares the modes it supports (`ftlab plugins`); another mode fails at validation, unless the backend documents a fallback (e.g. score_labels → generate on a service that only returns text), which the run applies, prints and tags as `ftlab.fallback.eval.decoding.mode`."""
    max_new_tokens: int = at_least(1, 16)
    """generate: tokens to generate at most."""
    temperature: float = at_least(0, 0.0)
    """generate: 0 = greedy."""
    top_p: float = within(0, 1, 1.0, lo_open=True)
    """generate: nucleus sampling mass."""
    batch_size: int = at_least(1, 8)
    """Examples per forward pass."""


@dataclass
class EvalConfig:
    """Evaluation settings, shared by every backend."""

    splits: List[str] = field(default_factory=lambda: ["eval"])
    """Splits to evaluate (eval, test)."""
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    """Answer production."""
    lenient: bool = True
    """Also report lenient metrics when the data has acceptable labels."""
    bootstrap_samples: int = at_least(1, 1000)
    """Paired bootstrap resamples for the compare stage."""
    bootstrap_seed: int = 0
    """Seed of the bootstrap."""
    confidence: float = within(0, 1, 0.95, lo_open=True, hi_open=True)
    """Confidence level of the intervals."""

    def __post_init__(self) -> None:
        bad = [s for s in self.splits if s not in ("eval", "test")]
        if bad:
            raise ValueError(f"eval.splits: unknown split {bad[0]!r} (known: eval, test)")
