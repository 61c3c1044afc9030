"""Entry point module: the ``tfidf`` config schema and factory (imports only ftlab and the stdlib)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ftlab import hookimpl
from ftlab.config import BackendConfig
from ftlab.contract import Capabilities, Fallback


class Classifier(Enum):
    linear_svc = "linear_svc"  # sklearn LinearSVC: one-vs-rest squared hinge
    logreg = "logreg"  # sklearn LogisticRegression: multinomial, lbfgs


class ClassWeight(Enum):
    balanced = "balanced"  # weight each class by n_samples / (n_classes * its count)
    none = "none"  # every example weighs 1


@dataclass
class TfidfConfig(BackendConfig):
    """Options of the TF-IDF + linear classifier backend (scikit-learn on the CPU; no prompt, no LLM)."""

    name: str = "tfidf"
    """Backend name."""
    ngram_max: int = 2
    """Longest word n-gram: 1 = unigrams, 2 = unigrams and bigrams."""
    min_df: int = 1
    """Keep only terms found in at least this many training texts (1 = keep all)."""
    sublinear_tf: bool = True
    """Term frequency 1 + log(count) instead of count."""
    classifier: Classifier = Classifier.linear_svc
    """LinearSVC (one-vs-rest, squared hinge) or LogisticRegression (multinomial)."""
    C: float = 1.0
    """Inverse regularisation strength: smaller = stronger (sklearn's default 1.0)."""
    class_weight: ClassWeight = ClassWeight.balanced
    """balanced: each class weighs n_rows / (n_classes x its rows), so rare classes count; none: 1 per row."""
    max_iter: int = 10000
    """Iteration cap of the classifier's solver."""

    def __post_init__(self) -> None:
        for key in ("ngram_max", "min_df", "max_iter"):
            if getattr(self, key) < 1:
                raise ValueError(f"backend.{key} must be at least 1, got {getattr(self, key)}")
        if self.C <= 0:
            raise ValueError(f"backend.C must be positive, got {self.C}")


def _factory(cfg, ctx):
    from ftlab_tfidf.backend import TfidfBackend

    return TfidfBackend(cfg, ctx)


_NO_LORA = ("tfidf has no language model to adapt: train fits TF-IDF + a linear classifier with the "
            "backend.* options and uses no train.* key")
CAPABILITIES = Capabilities(
    decoding_modes=("score_labels",),
    train_methods=("none",),
    fallbacks=(Fallback("eval.decoding.mode", "generate", "score_labels",
                        "tfidf generates no text: it answers the label with the highest classifier score"),
               Fallback("train.method", "lora", "tfidf", _NO_LORA),
               Fallback("train.method", "lora_cls", "tfidf", _NO_LORA)),
    train_keys={"method": "none keeps the training split's majority class; lora/lora_cls fit the classifier"})
"""tfidf ranks the labels (score_labels; generate falls back to it); train.method=none keeps the
majority-class base model, lora and lora_cls fall back to fitting the classifier (recorded as tags)."""


@hookimpl
def ftlab_register_backends(register):
    register("tfidf", _factory, TfidfConfig, CAPABILITIES, distributions=("scikit-learn",))
