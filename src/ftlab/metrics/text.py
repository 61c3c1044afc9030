"""Metrics of generated text against references: pure functions over (prediction, references) pairs.

Every metric maps one prediction and its references (one or more acceptable strings) to
per-example *statistics*, and a list of summed statistics to the corpus value. For a mean metric
(ROUGE, exact match, token F1) the statistics are ``[value, 1]``; for a corpus metric (sacrebleu's
BLEU and chrF) they are the library's own sufficient statistics (n-gram matches and lengths), so
the corpus score of any resample is the score of its summed statistics: the paired bootstrap
(:mod:`ftlab.metrics.compare_text`) resamples rows without re-tokenising anything, as sacrebleu's
own significance test does. Each metric also gives a per-example score for the predictions table,
the per-example deltas and the win/tie/loss counts.

Libraries (no Hugging Face ``evaluate``, whose metrics are scripts fetched from the hub):

- ``rouge-score`` (Google's reference implementation), stemmer on (as HELM). rougeLsum needs sentences
  on separate lines; the package splits with NLTK's punkt data, which cannot be installed offline,
  so :func:`sentences` splits them here and joins with newlines. With several references the
  example's score is the best reference's (by F1), as ``RougeScorer.score_multi`` does.
- ``sacrebleu``: corpus BLEU (13a tokenisation, exponential smoothing only for sentence BLEU) and
  chrF, 0-100, each with its signature recorded; ``bleu4`` is BigQuery's ``bleu4_score``: sacrebleu
  BLEU (max n-gram order 4) on a 0-1 scale, which is how Vertex AI documents its BLEU.
- exact match and token F1 with SQuAD's answer normalisation (lower case, no punctuation, no
  articles ``a an the``, single spaces), best over the acceptable answers.
"""

from __future__ import annotations

import collections
import functools
import re
import string
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ftlab.metrics.classification import prf_from_counts

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@dataclass(frozen=True)
class TextMetric:
    """One registered metric: the keys it produces and how."""

    name: str
    """Registry name (``rouge``, ``bleu``, ``chrf``, ``bleu4``, ``exact_match``, ``token_f1``)."""
    keys: tuple[str, ...]
    """The values it reports, e.g. ``rougeL_f1``; each is logged as ``eval/<stage>/<split>/<key>``."""
    stats: Callable[[str, Sequence[str]], dict[str, list[float]]]
    """(prediction, references) -> per key, this example's statistics (summable)."""
    value: Callable[[str, list[float]], float]
    """(key, summed statistics) -> the corpus value of that key."""
    example: Callable[[str, Sequence[str]], dict[str, float]]
    """(prediction, references) -> per key, this example's own score (the predictions table, deltas)."""
    signature: Callable[[], str] = lambda: ""
    """How the number was computed (library, version, options), recorded with the run."""
    scale: str = "0-1"
    """``0-1`` or ``0-100`` (sacrebleu's BLEU and chrF keep their usual scale)."""
    missing: Callable[[], str] = lambda: ""
    """What the metric needs that is not installed (an instruction, e.g. the extra to install); '' when it
    can run. Checked when ``eval.metrics`` names it, so a missing extra fails before any model loads."""


def mean_value(_key: str, stats: list[float]) -> float:
    """The corpus value of a mean metric: summed values over the number of examples."""
    return stats[0] / stats[1] if stats[1] else 0.0


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences without NLTK data: after ``.``, ``!`` or ``?`` followed by
    whitespace and an upper-case letter or digit, and at line breaks."""
    parts = []
    for line in text.splitlines():
        parts += re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", line.strip())
    return [p for p in parts if p]


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    import logging
    import sys

    logging.getLogger("absl").setLevel(logging.WARNING)  # rouge-score logs "Using default tokenizer." at INFO
    from absl import logging as absl_logging
    from rouge_score import rouge_scorer

    # absl (rouge-score's logger) makes a handler at import bound to the sys.stderr of that moment.
    # It is never attached here, but logging.config.dictConfig (Hydra's job logging) closes every
    # handler ever made, and absl's closes its stream unless it is the current sys.stderr: under a
    # stream capture that is another live stream. sys.__stderr__ is one absl never closes.
    absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge_scores(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum precision, recall and F1 of one example, best reference by each type's F1."""
    scorer = _rouge_scorer()
    pred = "\n".join(sentences(prediction))
    best: dict[str, tuple] = {}
    for ref in references or ("",):
        got = scorer.score("\n".join(sentences(ref)), pred)
        for t in ROUGE_TYPES:
            if t not in best or got[t].fmeasure > best[t][2]:
                best[t] = (got[t].precision, got[t].recall, got[t].fmeasure)
    out = {}
    for t in ROUGE_TYPES:
        p, r, f = best[t]
        out.update({f"{t}_precision": float(p), f"{t}_recall": float(r), f"{t}_f1": float(f)})
    return out


def _rouge_signature() -> str:
    from importlib.metadata import version

    return f"rouge-score {version('rouge-score')}, use_stemmer=True, rougeLsum sentences split by ftlab"


ROUGE = TextMetric(
    "rouge", tuple(f"{t}_{m}" for t in ROUGE_TYPES for m in ("precision", "recall", "f1")),
    stats=lambda p, refs: {k: [v, 1.0] for k, v in rouge_scores(p, refs).items()},
    value=mean_value, example=rouge_scores, signature=_rouge_signature)


@functools.lru_cache(maxsize=None)
def _sacre(kind: str):
    import sacrebleu

    return sacrebleu.BLEU() if kind == "bleu" else sacrebleu.CHRF()


@functools.lru_cache(maxsize=None)
def _sacre_sentence(kind: str):
    import sacrebleu

    return sacrebleu.BLEU(effective_order=True) if kind == "bleu" else sacrebleu.CHRF()


def _refs_for(references: Sequence[str]) -> list[list[str]]:
    return [[r] for r in (references or [""])]


def _sacre_metric(kind: str, key: str, factor: float) -> TextMetric:
    def stats(pred: str, refs: Sequence[str]) -> dict[str, list[float]]:
        m = _sacre(kind)
        return {key: [float(x) for x in m._extract_corpus_statistics([pred], _refs_for(refs))[0]]}

    def value(_key: str, summed: list[float]) -> float:
        m = _sacre(kind)
        return float(m._compute_score_from_stats([int(round(x)) if kind == "bleu" else x for x in summed]).score) \
            * factor

    def example(pred: str, refs: Sequence[str]) -> dict[str, float]:
        return {key: float(_sacre_sentence(kind).sentence_score(pred, list(refs or [""])).score) * factor}

    def signature() -> str:
        return str(_sacre(kind).get_signature())

    return TextMetric(kind if factor == 1 else key, (key,), stats, value, example, signature,
                      "0-100" if factor == 1 else "0-1")


BLEU = _sacre_metric("bleu", "bleu", 1.0)
"""sacrebleu corpus BLEU, 0-100."""
CHRF = _sacre_metric("chrf", "chrf", 1.0)
"""sacrebleu corpus chrF, 0-100."""
BLEU4 = _sacre_metric("bleu", "bleu4", 0.01)
"""BigQuery ML's ``bleu4_score``: sacrebleu BLEU-4 on a 0-1 scale."""


def normalize_answer(s: str) -> str:
    """SQuAD's normalisation: lower case, punctuation and articles removed, whitespace collapsed."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised acceptable answer, else 0.0."""
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(a) for a in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD token F1 (bag of normalised tokens), best over the acceptable answers."""
    p = normalize_answer(prediction).split()
    best = 0.0
    for a in answers:
        g = normalize_answer(a).split()
        if not p or not g:
            best = max(best, float(p == g))
            continue
        common = sum((collections.Counter(p) & collections.Counter(g)).values())
        # ftlab's one F1 (metrics.classification) on the bag-of-tokens counts.
        _, _, f1 = prf_from_counts(np.array([float(common)]), np.array([float(len(g))]),
                                   np.array([float(len(p))]))
        best = max(best, float(f1[0]))
    return best


def _single(name: str, fn: Callable[[str, Sequence[str]], float]) -> TextMetric:
    return TextMetric(name, (name,), stats=lambda p, refs: {name: [fn(p, refs), 1.0]}, value=mean_value,
                      example=lambda p, refs: {name: fn(p, refs)},
                      signature=lambda: "SQuAD v1.1 normalisation (lower, no punctuation/articles), best answer")


EXACT_MATCH = _single("exact_match", exact_match)
TOKEN_F1 = _single("token_f1", token_f1)

BUILTIN = (ROUGE, BLEU, CHRF, BLEU4, EXACT_MATCH, TOKEN_F1)
"""The metrics ftlab registers itself (through its default plugin, like any third-party metric)."""
