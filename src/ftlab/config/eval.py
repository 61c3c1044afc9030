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
    stop: List[str] = field(default_factory=list)
    """generate: strings that end an answer (cut before the first one found; the end token always ends it)."""
    min_new_tokens: int = at_least(0, 0)
    """generate: tokens an answer has at least before the end token may end it (0 = off; a stop string still ends it). A model tuned on short targets stops early; this is a decoding choice, so choose it on a dev split. Backends that honour it say so (`ftlab plugins`); elsewhere a value other than 0 is refused."""
    num_beams: int = at_least(1, 1)
    """generate: beam search over this many hypotheses (1 = greedy or sampling). Costs about num_beams times the compute of greedy decoding; refused by backends that do not declare it."""
    length_penalty: float = within(-5, 5, 1.0)
    """generate, num_beams > 1: exponent on the answer's length in a beam's score (sum of log-probabilities / length^penalty): above 1 favours longer answers, below 1 shorter ones."""


class CVGroupBy(Enum):
    text = "text"  # rows with the same input text share a fold (MTSamples files one transcript under several labels)
    none = "none"  # every row is its own group


@dataclass
class CVConfig:
    """Cross-validation on the training split (stage `cross_validate`): selection without the reported split."""

    folds: int = at_least(0, 0)
    """k of a stratified, grouped k-fold on the training split; 0 = off. With k >= 2 the run trains on k-1 folds and scores the held-out one, k times, through the same evaluator, before the configured training on the whole split; it logs each headline metric per fold (`cv/fold_<i>/<metric>`), their mean, std and standard error (`cv/<metric>_mean`, `_std`, `_stderr`) and the pooled out-of-fold scores (`cv/oof/<metric>`)."""
    seed: int = 0
    """Seed of the fold assignment (the same seed gives the same folds on the same data, for every backend and config)."""
    group_by: CVGroupBy = CVGroupBy.text
    """text: rows with identical input text are kept in one fold (a transcript filed under two labels never sits in two folds); none: rows are split independently."""


@dataclass
class EvalConfig:
    """Evaluation settings, shared by every backend."""

    task: str = "classification"
    """What a row's target is and what scores it: classification (a label of data.labels), text_generation, summarization, question_answering (data.target_column holds a reference text or a list of acceptable answers), or a task a plugin registers (`ftlab plugins`). See docs/evaluation.md, "Tasks"."""
    metrics: List[str] = field(default_factory=list)
    """Generation tasks: registered text metrics to compute (rouge, bleu, chrf, bleu4, exact_match, token_f1, or a plugin's); empty = the task's own list."""
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
    cv: CVConfig = field(default_factory=CVConfig)
    """Cross-validation on the training split (docs/evaluation.md, "Cross-validation")."""

    def __post_init__(self) -> None:
        bad = [s for s in self.splits if s not in ("eval", "test")]
        if bad:
            raise ValueError(f"eval.splits: unknown split {bad[0]!r} (known: eval, test)")
        if self.cv.folds == 1 or self.cv.folds < 0:
            raise ValueError(f"eval.cv.folds must be 0 (off) or at least 2, not {self.cv.folds}")
