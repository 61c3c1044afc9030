"""The backend contract: what the host hands a backend and what it gets back.

A backend is any object with ``train`` and ``predict`` (a :class:`Backend` protocol, no base class).
Everything crossing the boundary is a frozen dataclass, and a trained model is a *reference*
(adapter directory, or BigQuery model id + job id), never a live object, so a later process can
resume or replay from it. Scoring never happens in a backend: it returns raw text and the host's
parser and evaluator turn that into numbers, the same way for every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, runtime_checkable

UNPARSEABLE = "<unparseable>"
"""The explicit bucket for an answer the parser cannot map to a label. Never dropped."""


@dataclass(frozen=True)
class Example:
    """One labelled row of a split."""

    id: str
    """Stable id: ``<split>-<0-based line>`` unless the data has an id column."""
    text: str
    """The input text (a transcript)."""
    label: str
    """The row's own label (strict truth)."""
    acceptable: tuple[str, ...] = ()
    """Every label counted correct under lenient scoring (includes ``label``); empty = strict only."""
    source: str = ""
    """``file:line`` (1-based line) the row came from, for error messages."""


@dataclass(frozen=True)
class ModelRef:
    """A reference to a model a backend can predict with."""

    backend: str
    """Backend name that understands this reference."""
    kind: str
    """``base`` or ``tuned``."""
    uri: str = ""
    """Adapter directory (local) or ``project.dataset.model`` (BigQuery); empty for the base model."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Backend-specific facts (job id, location, base model id) needed to reload it."""

    def to_json(self) -> dict:
        return {"backend": self.backend, "kind": self.kind, "uri": self.uri, "extra": dict(self.extra)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ModelRef":
        """Inverse of :meth:`to_json` (as stored in ``state.json`` and the ``ftlab.trained_model`` tag)."""
        return cls(backend=d["backend"], kind=d["kind"], uri=d.get("uri", ""),
                   extra=dict(d.get("extra") or {}))


@dataclass(frozen=True)
class Decoding:
    """How answers are produced. Same evaluator whatever the mode."""

    mode: str = "score_labels"
    """``generate`` (free generation + parser), ``score_labels`` (rank labels by log-likelihood)."""
    max_new_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    batch_size: int = 8

    @classmethod
    def from_config(cls, d) -> "Decoding":
        """From ``cfg.eval.decoding`` (an ftlab.config.DecodingConfig)."""
        return cls(mode=getattr(d.mode, "value", d.mode), max_new_tokens=d.max_new_tokens,
                   temperature=d.temperature, top_p=d.top_p, batch_size=d.batch_size)


@dataclass(frozen=True)
class Prediction:
    """One answer for one example."""

    id: str
    raw_text: str
    """What the model said (for ``score_labels``: the chosen label string)."""
    label: str = ""
    """Filled by the host's parser: a configured label or ``<unparseable>``."""
    scores: Optional[Mapping[str, float]] = None
    """Per-label log-likelihoods, when the decoding mode produces them."""
    status: str = ""
    """Non-empty when the backend could not get an answer (kept, never dropped)."""
    latency_s: float = 0.0
    prompt_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Predictions:
    model: ModelRef
    items: tuple[Prediction, ...]
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Backend facts such as ``time/predict_s`` or ``cost/bytes_billed``; logged as they are."""


@dataclass(frozen=True)
class TrainJob:
    """Everything a backend needs to tune a model."""

    train: tuple[Example, ...]
    eval: tuple[Example, ...]
    prompt: Any
    """A :class:`ftlab.prompt.Prompt` (renders the instruction, labels and input)."""
    out_dir: Path
    """Folder for the backend's outputs (adapter, job ids); exists."""


@dataclass(frozen=True)
class TrainedModel:
    model: ModelRef
    history: tuple[Mapping[str, float], ...] = ()
    """Logged training rows, each with ``step`` and e.g. ``loss`` / ``eval_loss``."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Summary facts (``time/train_s``, ``train/trainable_params`` …)."""
    artifacts: tuple[str, ...] = ()
    """Files or folders to log as run artifacts (e.g. the adapter directory)."""


@dataclass
class RunContext:
    """What a backend may call back into while it works (all optional to use)."""

    run_dir: Path
    log_metrics: Callable[[Mapping[str, float], Optional[int]], None] = lambda m, step=None: None
    set_tags: Callable[[Mapping[str, str]], None] = lambda tags: None
    log_artifact: Callable[[Path, Optional[str]], None] = lambda path, artifact_path=None: None


@runtime_checkable
class Backend(Protocol):
    """Train and predict; built by a registered factory ``factory(cfg, ctx) -> Backend``.

    ``cfg`` is the fully composed and validated run config (``ftlab.config.RunConfig``; the
    backend's own options are ``cfg.backend``). Backends must import heavy libraries lazily.
    """

    def base_model(self) -> ModelRef:
        """The untuned model, as configured in ``cfg.model``."""

    def train(self, job: TrainJob) -> TrainedModel:
        """Tune and return a reference to the result."""

    def predict(
        self, model: ModelRef, examples: Sequence[Example], prompt: Any, decoding: Decoding
    ) -> Predictions:
        """Answer every example, in order, one :class:`Prediction` each (same ``id``)."""
