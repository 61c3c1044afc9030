"""The backend contract: what the host hands a backend and what it gets back.

A backend is any object with ``train`` and ``predict`` (a :class:`Backend` protocol, no base class).
Everything crossing the boundary is a frozen dataclass, and a trained model is a *reference*
(adapter directory, or BigQuery model id + job id), never a live object, so a later process can
resume or replay from it. Scoring never happens in a backend: it returns raw text and the host's
parser and evaluator turn that into numbers, the same way for every backend.

A backend also declares what it supports (:class:`Capabilities`, passed to ``register``): the host
refuses an unsupported choice when the config is validated, or applies and records a documented
:class:`Fallback`, so no choice is silently ignored. Optional parts of the protocol
(:class:`NativeEvaluator`) are switched on by a capability flag, never found by duck typing.
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
    """The row's own label (strict truth); empty for a generation task."""
    acceptable: tuple[str, ...] = ()
    """Every label counted correct under lenient scoring (includes ``label``); empty = strict only."""
    source: str = ""
    """``file:line`` (1-based line) the row came from, for error messages."""
    references: tuple[str, ...] = ()
    """Generation tasks: the reference text(s) (``data.target_column``): one for text generation and
    summarization, every acceptable answer for question answering; empty for classification."""

    @property
    def target(self) -> str:
        """What a model is trained to write: the label, or a generation task's first reference."""
        return self.references[0] if self.references else self.label


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
    stop: tuple[str, ...] = ()
    """Strings that end an answer: the text is cut before the first one (the end token always ends it)."""
    seed: int = 0
    """Seed of sampled decoding (``temperature`` > 0); greedy decoding ignores it."""
    min_new_tokens: int = 0
    """Tokens an answer has at least before the end token may end it (0 = off)."""
    num_beams: int = 1
    """Beam search width (1 = greedy or sampling)."""
    length_penalty: float = 1.0
    """Beam search: exponent on length in a beam's score."""

    @classmethod
    def from_config(cls, d, seed: int = 0) -> "Decoding":
        """From ``cfg.eval.decoding`` (an ftlab.config.DecodingConfig)."""
        return cls(mode=getattr(d.mode, "value", d.mode), max_new_tokens=d.max_new_tokens,
                   temperature=d.temperature, top_p=d.top_p, batch_size=d.batch_size,
                   stop=tuple(getattr(d, "stop", ()) or ()), seed=seed,
                   **{k: getattr(d, k, getattr(cls, k)) for k in DECODING_OPTIONS})


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
    prompt: str = ""
    """The exact text the model was given (chat template and truncation applied), as the backend sent it;
    the host writes its sha256 in the predictions row and the distinct texts to ``prompts.jsonl``."""
    truncation: Optional[Mapping[str, Any]] = None
    """Each cut applied to the input text, by kind: ``chars`` (the host's ``prompt.max_input_chars``
    budget, the same for every backend), ``tokens`` (a backend's token budget), ``document`` (a separate
    context a backend reads), each ``{"limit", "input", "kept", "side"}`` in that unit, e.g.
    ``{"tokens": {"limit": 256, "input": 812, "kept": 256, "side": "right"}}``. ``None`` = nothing cut."""
    prompt_sha256: str = ""
    """Hash of :attr:`prompt`; filled from ``prompt`` when empty (read back from a row without the text)."""

    def __post_init__(self) -> None:
        if self.prompt and not self.prompt_sha256:
            object.__setattr__(self, "prompt_sha256", text_sha256(self.prompt))

    def to_json(self) -> dict:
        """This prediction's fields of a predictions row (``predictions.jsonl``); the one writer.
        The prompt text itself goes to ``prompts.jsonl`` (:func:`prompt_rows`), the row keeps its hash."""
        return {"id": self.id, "raw_text": self.raw_text, "label": self.label, "status": self.status,
                "scores": dict(self.scores) if self.scores else None, "latency_s": self.latency_s,
                "prompt_tokens": self.prompt_tokens, "output_tokens": self.output_tokens,
                "prompt_sha256": self.prompt_sha256 or None,
                "truncation": dict(self.truncation) if self.truncation else None}

    @classmethod
    def from_json(cls, row: Mapping[str, Any], prompts: Optional[Mapping[str, str]] = None) -> "Prediction":
        """Inverse of :meth:`to_json`; a row's other fields (truth, correct …) are ignored. ``prompts``
        (sha256 → text, from ``prompts.jsonl``) restores the prompt text."""
        sha = row.get("prompt_sha256") or ""
        return cls(id=row["id"], raw_text=row["raw_text"], label=row.get("label") or "",
                   scores=row.get("scores"), status=row.get("status") or "",
                   latency_s=row.get("latency_s", 0.0), prompt_tokens=row.get("prompt_tokens", 0),
                   output_tokens=row.get("output_tokens", 0), prompt=(prompts or {}).get(sha, ""),
                   truncation=row.get("truncation"), prompt_sha256=sha)


def cut_record(limit: int, size: int, side: str) -> dict:
    """One entry of :attr:`Prediction.truncation`: an input of ``size`` units kept to ``limit`` on ``side``."""
    return {"limit": limit, "input": size, "kept": limit, "side": side}


def text_sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_rows(items: Sequence[Prediction]) -> list[dict]:
    """The distinct prompts of ``items``, first-seen order: ``{"sha256", "text", "ids"}`` rows."""
    seen: dict[str, dict] = {}
    for p in items:
        if p.prompt:
            seen.setdefault(p.prompt_sha256, {"sha256": p.prompt_sha256, "text": p.prompt, "ids": []})["ids"].append(p.id)
    return list(seen.values())


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
    repeat: bool = False
    """More trainings on overlapping rows of this split follow in this process (the folds of a
    cross-validation): a backend may keep what does not depend on training (frozen features) until a
    job without ``repeat`` comes. Never changes the result."""


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
    report: Callable[[Mapping[str, float], int], None] = lambda values, step: None
    """Intermediate evaluation values during training, e.g. ``report({"train/eval_loss": 0.42}, 2)``
    after epoch 2. ``step`` counts training progress in a unit every run of a search shares (e.g. epochs
    begun). Not logged (log them with ``log_metrics``): a hyperparameter search uses them to stop
    hopeless trials early. Then the call raises :class:`Pruned`; let it propagate, the host records
    the run as pruned. Declare the keys in ``Capabilities.intermediate_values``."""


class Pruned(Exception):
    """Raised by :attr:`RunContext.report` when the sweep stops this run early (its trial was pruned).

    Backends let it pass; the host ends the run as pruned (MLflow status ``KILLED``, tag
    ``ftlab.pruned=true``) and the sweep goes on."""

    def __init__(self, step: int, message: str = "") -> None:
        super().__init__(message or f"pruned at step {step}")
        self.step = step


@dataclass(frozen=True)
class Fallback:
    """A documented substitute for a choice the backend cannot honour: applied and recorded, not refused.

    The host applies it when ``key`` is set to ``requested``; the run records it as the MLflow tag
    ``ftlab.fallback.<key>``, in ``manifest.json`` under ``fallbacks`` and prints it.
    """

    key: str
    """Dotted config key, e.g. ``eval.decoding.mode``."""
    requested: str
    """The configured value this fallback replaces, e.g. ``score_labels``."""
    used: str
    """What the backend does instead, e.g. ``generate``."""
    reason: str
    """One sentence: why, and what it means for the numbers."""

    def describe(self) -> str:
        return f"{self.key}={self.requested} → {self.used}: {self.reason}"

    def to_json(self) -> dict:
        return {"key": self.key, "requested": self.requested, "used": self.used, "reason": self.reason}


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports; the 4th argument of ``register`` in ``ftlab_register_backends``.

    ``None`` for a choice means *not declared*: the host checks nothing for it (a backend that
    registers no capabilities at all behaves as before capabilities existed). A declared tuple is
    checked when the config is validated: a value outside it is an error naming the key, the value,
    the backend and what it supports, unless ``fallbacks`` has an entry for that key and value.
    """

    decoding_modes: Optional[tuple[str, ...]] = None
    """``eval.decoding.mode`` values the backend honours (``generate``, ``score_labels``)."""
    train_methods: Optional[tuple[str, ...]] = None
    """``train.method`` values the backend honours (``none``, ``lora``, ``lora_cls``)."""
    fallbacks: tuple[Fallback, ...] = ()
    """Documented substitutes for unsupported values (applied and recorded instead of an error)."""
    native_evaluate: bool = False
    """The backend implements :class:`NativeEvaluator`; the host calls it after each evaluation."""
    intermediate_values: tuple[str, ...] = ()
    """Metric keys the backend can pass to :attr:`RunContext.report` while it trains (e.g.
    ``("train/eval_loss",)``); empty = none, so a search never prunes this backend's trials."""
    tasks: Optional[tuple[str, ...]] = None
    """``eval.task`` values the backend supports (``classification``, ``summarization`` …); ``None`` = not
    declared (classification only is assumed for a generation task: it is refused)."""
    generation_methods: Optional[tuple[str, ...]] = None
    """``train.method`` values that train for a generative task (e.g. ``none``, ``lora``); ``None`` = all
    of ``train_methods``."""
    decoding_options: tuple[str, ...] = ()
    """Optional ``eval.decoding`` keys the backend honours (:data:`DECODING_OPTIONS`); each other one set
    away from its default is refused at validation, so no backend ignores it silently."""
    train_keys: Optional[Mapping[str, str]] = None
    """``train.*`` keys the backend honours (``lora`` covers ``lora.r`` …), each with one phrase on how it
    maps the key, e.g. ``{"epochs": "MAX_ITERATIONS = ceil(epochs x training rows)"}``. A run on this
    backend prints and tags (``ftlab.unused_train_keys``) every other key set away from its schema
    default. ``None`` = not declared (nothing is reported)."""

    def supported(self, key: str) -> Optional[tuple[str, ...]]:
        """The declared values for a checked config key (``None`` = not declared)."""
        return {"eval.decoding.mode": self.decoding_modes, "train.method": self.train_methods}[key]

    def fallback(self, key: str, value: str) -> Optional[Fallback]:
        return next((f for f in self.fallbacks if f.key == key and f.requested == value), None)

    def honours_train_key(self, key: str) -> bool:
        """Whether ``train.<key>`` (dotted below ``train``) is used; undeclared = assumed used."""
        if self.train_keys is None:
            return True
        return any(key == k or key.startswith(k + ".") for k in self.train_keys)


CHECKED_KEYS: tuple[str, ...] = ("eval.decoding.mode", "train.method")
"""Config keys a backend's :class:`Capabilities` can restrict."""
DECODING_OPTIONS: tuple[str, ...] = ("min_new_tokens", "num_beams", "length_penalty")
"""``eval.decoding`` keys a backend must declare (``Capabilities.decoding_options``); a value other than
the :class:`Decoding` default (which means *off*) on a backend that does not declare the key is refused."""


def refused_decoding_option(decoding, backend: str, caps: Optional["Capabilities"]) -> Optional[tuple[str, str]]:
    """``(key, message)`` for the first :data:`DECODING_OPTIONS` key that ``decoding`` (the config's
    ``eval.decoding``) sets on a backend whose capabilities do not declare it; None when none does."""
    honoured = caps.decoding_options if caps is not None else ()
    for key in DECODING_OPTIONS:
        off = getattr(Decoding, key)
        if getattr(decoding, key, off) != off and key not in honoured:
            return (f"eval.decoding.{key}",
                    f"eval.decoding.{key}={getattr(decoding, key)} is not supported by backend {backend!r} (it "
                    f"honours eval.decoding: {', '.join(honoured) or 'none of ' + ', '.join(DECODING_OPTIONS)}); "
                    f"set it back to {off} or choose another backend")
    return None


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


@runtime_checkable
class NativeEvaluator(Protocol):
    """Optional part of the protocol: the backend's own metrics, beside the host's (never the headline).

    Declare it with ``Capabilities(native_evaluate=True)``; the host then calls it once per evaluated
    stage and split, after scoring the predictions, and logs each key as
    ``native/<stage>/<split>/<key>`` (e.g. BigQuery's ``ML.EVALUATE`` rows, flattened).
    """

    def native_evaluate(self, model: ModelRef, examples: Sequence[Example], prompt: Any) -> Mapping[str, float]:
        """Metrics of ``model`` on ``examples`` as the backend computes them (``{key: float}``)."""
