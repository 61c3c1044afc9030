"""Entry point module: imports only ftlab and the standard library (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass

from ftlab import hookimpl
from ftlab.config import BackendConfig


@dataclass
class LocalPeftConfig(BackendConfig):
    """Options of the local transformers + peft backend."""

    name: str = "local_peft"
    """Backend name."""
    device: str = "auto"
    """auto (cuda if available, else cpu), cpu, cuda, cuda:N or xla."""
    dtype: str = "float32"
    """Weight dtype after loading: float32 or bfloat16 (GGUF is always dequantised to fp32 first)."""
    bf16_autocast: bool = False
    """bf16 autocast for forward passes where supported (off: ~2x slower on the 2-core dev CPU, see README)."""
    num_threads: int = 0
    """torch intra-op threads; 0 = torch's default."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~30% slower)."""
    checkpoint_steps: int = 50
    """Write a resumable checkpoint (adapter, optimizer, step, RNG) every N optimizer steps; 0 = off."""
    max_grad_norm: float = 1.0
    """Clip the gradient norm to this value before each optimizer step; 0 = no clipping."""
    group_by_length: bool = True
    """Batch training examples of similar length together (less padding); order stays seeded."""
    end_token: str = ""
    """Token that ends an answer (training target and scored continuation); empty = the tokenizer's eos."""
    score_end_token: bool = True
    """score_labels: include the end token in a label's log-probability (as in training)."""
    length_normalize: bool = False
    """score_labels: rank by mean instead of summed token log-probability."""
    progress: bool = True
    """Show progress bars (tqdm) for training and prediction."""


def _factory(cfg, ctx):
    from ftlab_local_peft.backend import LocalPeftBackend

    return LocalPeftBackend(cfg, ctx)


@hookimpl
def ftlab_register_backends(register):
    register("local_peft", _factory, LocalPeftConfig)
