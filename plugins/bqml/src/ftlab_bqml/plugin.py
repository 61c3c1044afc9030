"""Entry point module: the ``bqml`` config schema and factory (imports only ftlab and the stdlib)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ftlab import hookimpl
from ftlab.config import BackendConfig, ModelConfig
from ftlab.config.train import TrainConfig
from ftlab.contract import Capabilities, Fallback

from ftlab_bqml import validate as v


@dataclass
class BqmlConfig(BackendConfig):
    """Options of the BigQuery ML backend (remote Gemini model, supervised tuning in BigQuery)."""

    name: str = "bqml"
    """Backend name."""
    project: str = "???"
    """Google Cloud project that runs the jobs and owns the dataset."""
    dataset: str = "???"
    """BigQuery dataset for the uploaded splits and the models (must exist, in `location`)."""
    location: str = "US"
    """Location of the dataset, the connection and every job (US, EU, us-central1 …)."""
    connection: str = "DEFAULT"
    """DEFAULT (the project's default Cloud resource connection) or project.region.connection_id."""
    endpoint: str = "gemini-2.0-flash-001"
    """Remote model, also the tuning base; must be tunable (text-bison options are gone)."""
    api_endpoint: Optional[str] = None
    """BigQuery REST root; null = real Google. Tests point it at the fake (http://127.0.0.1:PORT)."""
    credentials_file: Optional[str] = None
    """Service-account JSON file; null = Application Default Credentials. Never logged."""
    dry_run: bool = False
    """Print every statement with BigQuery's dry-run byte estimate; create and upload nothing."""
    name_prefix: str = "ftlab"
    """Prefix of every table and model name the backend creates."""
    max_iterations: Optional[int] = None
    """Tuning steps (MAX_ITERATIONS, sent as given; the service rounds up to whole epochs of the training rows); null = from train.epochs or train.max_steps, rounded up to whole epochs."""
    learning_rate_multiplier: Optional[float] = None
    """LEARNING_RATE_MULTIPLIER (multiplies the service's recommended learning rate); null = train.learning_rate / 3e-4, ftlab's default rate standing for the recommended one."""
    data_split_method: Optional[str] = None
    """DATA_SPLIT_METHOD: AUTO_SPLIT, RANDOM or NO_SPLIT (CUSTOM and SEQ need a split column ftlab does not send); null = RANDOM when train.holdout_fraction > 0, else NO_SPLIT (ftlab has its own eval split)."""
    data_split_eval_fraction: Optional[float] = None
    """DATA_SPLIT_EVAL_FRACTION for RANDOM; null = train.holdout_fraction when > 0, else omitted (service default 0.2)."""
    evaluation_task: Optional[str] = None
    """EVALUATION_TASK of the tuning job; null = eval.task's BigQuery name (TEXT_GENERATION, SUMMARIZATION, QUESTION_ANSWERING, CLASSIFICATION), which is always ML.EVALUATE's task_type. Set only to UNSPECIFIED or that same name."""
    generate_function: str = "ai"
    """ai: AI.GENERATE_TEXT (Google's recommended function; result and status columns); ml: ML.GENERATE_TEXT (the 2024 blog's function; ml_generate_text_* columns). Decoding values are sent explicitly either way."""
    max_output_tokens: Optional[int] = None
    """Tokens to generate (the generate function and ML.EVALUATE); null = eval.decoding.max_new_tokens."""
    temperature: Optional[float] = None
    """Sampling temperature, always sent explicitly; null = eval.decoding.temperature."""
    top_p: Optional[float] = None
    """Nucleus mass, always sent explicitly; null = eval.decoding.top_p."""
    native_eval: bool = True
    """Also run ML.EVALUATE (logged as native/... metrics, never the headline)."""
    row_retries: int = 3
    """Re-send rows whose status column (status, ml_generate_text_status) is non-empty at most this many times."""
    row_retry_backoff_s: float = 5.0
    """Wait before the first row retry; doubles each round."""
    poll_interval_s: float = 10.0
    """First wait between polls of the tuning job; grows 1.5x per poll."""
    poll_max_interval_s: float = 300.0
    """Longest wait between polls of the tuning job."""
    job_timeout_ms: Optional[int] = None
    """jobTimeoutMs of the tuning job; null = the service default (24 h for CREATE MODEL)."""
    http_retry_deadline_s: float = 600.0
    """Deadline of the client's retry of transient HTTP errors (429, 500, 502, 503)."""
    http_retry_initial_s: float = 1.0
    """First backoff of that retry (doubles, at most 60 s)."""
    job_retry_deadline_s: float = 1200.0
    """Deadline for re-issuing query jobs that failed with a retryable job error."""
    maximum_bytes_billed: Optional[int] = None
    """Fail any statement that would bill more bytes than this; null = no cap."""
    gcs_train_uri: Optional[str] = None
    """gs:// NDJSON (id, input_text, output_text) loaded with LOAD DATA instead of uploading train."""
    gcs_eval_uri: Optional[str] = None
    """gs:// NDJSON (id, input_text, output_text) loaded with LOAD DATA instead of uploading eval."""
    progress: bool = True
    """Show a progress line while polling the tuning job."""

    def __post_init__(self) -> None:
        for key in ("project", "dataset"):
            if getattr(self, key) in ("", "???", None):
                raise v.BqmlConfigError(f"backend.{key} must be set (e.g. backend.{key}=...)")
        v.check_project("project", self.project)
        v.check_name("dataset", self.dataset)
        v.check_name("name_prefix", self.name_prefix)
        v.check_location("location", self.location)
        v.check_connection("connection", self.connection)
        v.check_endpoint("endpoint", self.endpoint)
        if self.data_split_method is not None:
            self.data_split_method = v.check_split_method("data_split_method", self.data_split_method)
        if self.evaluation_task is not None:
            self.evaluation_task = v.check_choice("evaluation_task", self.evaluation_task, v.EVAL_TASKS)
        self.generate_function = v.check_choice("generate_function", self.generate_function,
                                                v.GENERATE_FUNCTIONS).lower()
        if self.max_iterations is not None:
            v.check_number("max_iterations", self.max_iterations, lo=1, integer=True)
        if self.learning_rate_multiplier is not None:
            v.check_number("learning_rate_multiplier", self.learning_rate_multiplier, lo=0, lo_open=True)
        if self.data_split_eval_fraction is not None:
            v.check_number("data_split_eval_fraction", self.data_split_eval_fraction, lo=0, hi=1)
            if self.data_split_method not in (None, "RANDOM"):
                raise v.BqmlConfigError(
                    f"backend.data_split_eval_fraction={self.data_split_eval_fraction} is only read with "
                    f"data_split_method=RANDOM, not {self.data_split_method}")
        if self.max_output_tokens is not None:
            v.check_number("max_output_tokens", self.max_output_tokens, lo=1, hi=8192, integer=True)
        for key in ("temperature", "top_p"):
            if getattr(self, key) is not None:
                v.check_number(key, getattr(self, key), lo=0, hi=1)
        v.check_number("row_retries", self.row_retries, lo=0, integer=True)
        for key in ("row_retry_backoff_s", "poll_interval_s", "poll_max_interval_s", "http_retry_deadline_s",
                    "http_retry_initial_s", "job_retry_deadline_s"):
            v.check_number(key, getattr(self, key), lo=0)
        for key in ("gcs_train_uri", "gcs_eval_uri"):
            if getattr(self, key) is not None:
                v.check_gcs_uri(key, getattr(self, key))
        if self.api_endpoint is not None and not str(self.api_endpoint).startswith(("http://", "https://")):
            raise v.BqmlConfigError(f"backend.api_endpoint={self.api_endpoint!r} must be an http(s) URL")


REFERENCE_LEARNING_RATE = TrainConfig.learning_rate
"""The train.learning_rate that maps to LEARNING_RATE_MULTIPLIER 1.0: ftlab's schema default."""


def _factory(cfg, ctx):
    from ftlab_bqml.backend import BqmlBackend

    return BqmlBackend(cfg, ctx)


TASKS = ("classification", "text_generation", "summarization", "question_answering")
"""Every eval.task with a BigQuery ML name (EVALUATION_TASK / ML.EVALUATE task_type)."""

CAPABILITIES = Capabilities(
    decoding_modes=("generate",),
    train_methods=("none", "lora"),
    fallbacks=(Fallback("eval.decoding.mode", "score_labels", "generate",
                        "BigQuery's generate functions return text, not label log-likelihoods, so BigQuery "
                        "generates the answer and the host's parser maps it to a label (it can be unparseable)"),),
    native_evaluate=True,
    tasks=TASKS,
    generation_methods=("none", "lora"),
    train_keys={
        "method": "lora: CREATE MODEL supervised tuning (Vertex AI picks the adapter); none: the base model",
        "epochs": "MAX_ITERATIONS = ceil(epochs) x training rows (the service tunes whole epochs), unless "
                  "train.max_steps or backend.max_iterations is set",
        "max_steps": "MAX_ITERATIONS = max_steps rounded up to whole epochs of the training rows, unless "
                     "backend.max_iterations is set",
        "learning_rate": f"LEARNING_RATE_MULTIPLIER = learning_rate / {REFERENCE_LEARNING_RATE:g} (ftlab's default "
                         "rate stands for the service's recommended one), unless backend.learning_rate_multiplier is set",
        "holdout_fraction": "> 0: DATA_SPLIT_METHOD='RANDOM' and DATA_SPLIT_EVAL_FRACTION = it (2 decimals); "
                            "0: NO_SPLIT; unless backend.data_split_method is set"})
"""What BigQuery ML can do: free generation only (score_labels falls back to generate, recorded as
tag ``ftlab.fallback.eval.decoding.mode``), every task type BigQuery ML evaluates, supervised tuning
(``lora``: Vertex AI's parameter-efficient tuning; ``train.lora.*`` is not sent) or none, and
``ML.EVALUATE`` as native evaluation. ``train_keys`` says how each honoured ``train.*`` key becomes a
tuning option (:mod:`ftlab_bqml.tuning`); any other key set is reported as unused."""


@dataclass
class RemoteModelConfig(ModelConfig):
    """A hosted model named by ``endpoint`` (``model.source=remote_endpoint``)."""

    name: str = "gemini_2_0_flash"
    """Short name, used in run names and MLflow params."""
    source: str = "remote_endpoint"
    """remote_endpoint: a model hosted by the service, named by `endpoint`."""
    endpoint: str = "???"
    """The hosted model's name, e.g. gemini-2.0-flash-001; wins over backend.endpoint on bqml."""

    def __post_init__(self) -> None:
        if self.source != "remote_endpoint":
            raise ValueError(f"model.source={self.source!r}: this model schema (bqml) is for remote_endpoint")


DISTRIBUTIONS = ("google-cloud-bigquery", "google-api-core", "google-auth")
"""Packages whose versions a run on this backend records in its manifest."""


@hookimpl
def ftlab_register_backends(register):
    register("bqml", _factory, BqmlConfig, CAPABILITIES, distributions=DISTRIBUTIONS)


@hookimpl
def ftlab_register_configs(store):
    store("model_source", "remote_endpoint", RemoteModelConfig)
