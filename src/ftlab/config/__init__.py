"""Typed config schemas, one module per group; composed and validated by ftlab.config.compose."""

from ftlab.config.data import AcceptableLabelsConfig, AcceptableSource, DataConfig, OnError
from ftlab.config.eval import DecodingConfig, DecodingMode, EvalConfig
from ftlab.config.model import ModelConfig, ModelSource, TinyModelConfig
from ftlab.config.prompt import PromptConfig
from ftlab.config.run import BackendConfig, RunConfig, Stage
from ftlab.config.tracking import TrackingConfig
from ftlab.config.train import LoraConfig, TrainConfig, TrainMethod

__all__ = [
    "AcceptableLabelsConfig", "AcceptableSource", "BackendConfig", "DataConfig", "DecodingConfig",
    "DecodingMode", "EvalConfig", "LoraConfig", "ModelConfig", "ModelSource", "OnError", "PromptConfig",
    "RunConfig", "Stage", "TinyModelConfig", "TrackingConfig", "TrainConfig", "TrainMethod",
]
