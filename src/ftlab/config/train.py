"""Schema of the ``train`` group: tuning method and hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List

from ftlab.config.bounds import above, at_least, within


class TrainMethod(Enum):
    lora = "lora"  # LoRA adapters, generative: learn to write the label after the prompt
    lora_cls = "lora_cls"  # LoRA adapters plus a classification head over the prompt's hidden state
    none = "none"  # no tuning (evaluate the base model only)


class ClassWeighting(Enum):
    none = "none"  # every training row counts the same
    sqrt = "sqrt"  # weight a class by sqrt(n / (classes * count)): milder for the rarest classes
    balanced = "balanced"  # n / (classes * count), as scikit-learn's class_weight="balanced"


class MultiLabel(Enum):
    soft = "soft"  # one item per distinct text, its target spread over every label it is filed under
    rows = "rows"  # every row as it is: a text filed under two labels is trained twice


QUANTIZATION = ("none", "4bit", "8bit")
"""``train.quantization`` values (strings: an Enum member cannot be named ``4bit``)."""
QUANTIZATION_FALLBACK = ("error", "none")
"""``train.quantization_fallback`` values."""


@dataclass
class LoraConfig:
    """LoRA adapter shape."""

    r: int = at_least(1, 16)
    """Rank of the update matrices."""
    alpha: int = above(0, 32)
    """Scaling numerator (scale = alpha / r)."""
    dropout: float = within(0, 1, 0.05, hi_open=True)
    """Dropout on the adapter input."""
    target_modules: List[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names to adapt (as the backend's model names them)."""


@dataclass
class TrainConfig:
    """How to tune: generic knobs. Each backend declares the keys it honours and how it maps them
    (`ftlab plugins`); a key set on a backend that does not use it is printed and tagged, not silently dropped."""

    method: TrainMethod = TrainMethod.lora
    """lora (generative), lora_cls (LoRA + classification head) or none. Each backend declares the methods it supports (`ftlab plugins`); another method fails at validation, unless the backend documents a fallback (tfidf: lora → its own classifier fit), which the run applies, prints and tags as `ftlab.fallback.train.method`."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA shape (method=lora or lora_cls)."""
    epochs: float = above(0, 1.0)
    """Passes over the training split (ignored when max_steps is set, but still checked)."""
    max_steps: int = at_least(1, -1, unset=-1)
    """Optimizer steps; -1 = derive from epochs."""
    learning_rate: float = above(0, 3e-4)
    """Peak learning rate."""
    lr_scheduler: str = "linear"
    """Learning-rate schedule after warm-up, e.g. linear, cosine or constant; each backend maps it (`ftlab plugins`)."""
    warmup_ratio: float = within(0, 1, 0.05, hi_open=True)
    """Fraction of steps spent warming up."""
    weight_decay: float = at_least(0, 0.0)
    """Decoupled weight decay of the optimizer."""
    batch_size: int = at_least(1, 4)
    """Examples per device step."""
    gradient_accumulation_steps: int = at_least(1, 2)
    """Steps accumulated per optimizer step."""
    logging_steps: int = at_least(1, 5)
    """Log train/loss every N optimizer steps."""
    eval_loss: bool = False
    """Compute eval/loss on the eval split at the end of each epoch (costs time)."""
    holdout_fraction: float = within(0, 1, 0.0, hi_open=True)
    """Fraction of the training split a tuning service holds out as its own validation data (0 = none; ftlab's eval split is never used for it). A cloud tuning service maps it to its own hold-out option (docs/backends); a backend that does not use it reports it as unused."""
    seed: int = 42
    """Seed for shuffling, dropout and adapter initialisation."""
    class_weighting: ClassWeighting = ClassWeighting.none
    """Loss weight per class: none, sqrt or balanced (inverse frequency; macro-F1 weighs classes equally)."""
    multi_label: MultiLabel = MultiLabel.rows
    """Texts filed under several labels: rows (train each row) or soft (one item, target spread over them)."""
    quantization: str = "none"
    """none, 4bit or 8bit: load the frozen base weights quantised and train LoRA on top (QLoRA: 4bit is NF4 with double quantisation, compute in backend.dtype). Needs a device and library that support it (a backend says which in `ftlab plugins`; docs/hardware.md); elsewhere see quantization_fallback."""
    quantization_fallback: str = "error"
    """Where train.quantization cannot run (e.g. no CUDA device): error (stop before the model loads, naming the key and the device) or none (train without quantisation; printed and tagged ftlab.fallback.train.quantization)."""

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATION:
            raise ValueError(f"train.quantization={self.quantization!r}: use one of {', '.join(QUANTIZATION)}")
        if self.quantization_fallback not in QUANTIZATION_FALLBACK:
            raise ValueError(f"train.quantization_fallback={self.quantization_fallback!r}: "
                             f"use one of {', '.join(QUANTIZATION_FALLBACK)}")
