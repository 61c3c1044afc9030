"""Typed config schemas, one module per group; composed and validated by ftlab.config.compose."""

from ftlab.config.data import AcceptableLabelsConfig, AcceptableSource, DataConfig, OnError
from ftlab.config.eval import DecodingConfig, DecodingMode, EvalConfig
from ftlab.config.model import MODEL_SOURCE_GROUP, ModelConfig
from ftlab.config.prompt import PromptConfig
from ftlab.config.run import BackendConfig, RunConfig, Stage
from ftlab.config.tracking import TrackingConfig
from ftlab.config.train import LoraConfig, TrainConfig, TrainMethod

__all__ = [
    "AcceptableLabelsConfig", "AcceptableSource", "BackendConfig", "DataConfig", "DecodingConfig",
    "DecodingMode", "EvalConfig", "LoraConfig", "MODEL_SOURCE_GROUP", "ModelConfig", "OnError",
    "PromptConfig", "RunConfig", "Stage", "TrackingConfig", "TrainConfig", "TrainMethod",
]
