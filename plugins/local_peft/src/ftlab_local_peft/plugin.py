"""Entry point module: imports only ftlab and the standard library (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass

from ftlab import hookimpl
from ftlab.config import BackendConfig
from ftlab.contract import Capabilities


@dataclass
class LocalPeftConfig(BackendConfig):
    """Options of the local transformers + peft backend."""

    name: str = "local_peft"
    """Backend name."""
    device: str = "auto"
    """auto (cuda if available, else cpu), cpu, cuda, cuda:N or xla."""
    dtype: str = "auto"
    """Compute dtype: auto, float32 or bfloat16 (weights stay fp32; bf16 runs matmuls under autocast).
    auto: bf16 on CUDA with bf16 support; on CPU only where the CPU has native bf16 instructions and a
    1-second probe (cached per machine) shows it faster. The choice and its reason are recorded."""
    model_cache: bool = True
    """Keep a GGUF model's dequantised weights and tokenizer as safetensors + JSON under
    $FTLAB_CACHE_DIR (default ~/.cache/ftlab), keyed by the file's sha256 and the library versions,
    so later runs load in seconds instead of dequantising again."""
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
    calibration: str = "none"
    """score_labels: none, or content_free (contextual calibration: subtract each label's log-probability
    after content-free inputs, the mean over 'N/A', '' and '[MASK]', from its score before ranking)."""
    train_layers: int = 0
    """lora_cls: LoRA on the top N decoder layers only (0 = all layers)."""
    adapted_tokens: int = 16
    """lora_cls: the last N prompt tokens run through the LoRA-adapted layers and feed the head; the
    tokens before them are context, encoded once by the frozen model (their keys/values are cached and
    reused by every epoch and by the tuned evaluation). 0 = every token is adapted (classic LoRA, slow)."""
    pooling: str = "last"
    """lora_cls: what the head reads: the last adapted token (last), the adapted tokens' mean (mean), both
    (last_mean), or the last adapted token plus the frozen model's final states averaged over the whole
    prompt (last_context)."""
    document_tokens: int = 0
    """lora_cls: also give the head the frozen model's final states averaged over the first N tokens
    of the raw input text (no prompt), encoded in chunks of ``document_chunk_tokens`` tokens, once
    per example. The prompt keeps ``prompt.max_input_tokens`` (the adapted tokens attend to it);
    this reads further into long inputs at the cost of one frozen forward over N tokens. 0 = off."""
    document_chunk_tokens: int = 512
    """lora_cls with document_tokens: chunk length of the document pass (attention stays within a chunk)."""
    head_init: str = "zero"
    """lora_cls: how the head starts: zero (uniform answers), or probe (a linear probe on the frozen
    model's head features, fitted to convergence first: LP-FT, then LoRA and head are tuned together)."""
    probe_c: float = 1.0
    """lora_cls with head_init=probe: inverse L2 strength of the probe (scikit-learn's C)."""
    head_lr_multiplier: float = 10.0
    """lora_cls: the new head's learning rate is train.learning_rate x this."""
    reuse_base_states: bool = True
    """lora_cls: keep the frozen layers' states from the base evaluation's forward pass for the tuned one."""
    progress: bool = True
    """Show progress bars (tqdm) for training and prediction."""


def _factory(cfg, ctx):
    from ftlab_local_peft.backend import LocalPeftBackend

    return LocalPeftBackend(cfg, ctx)


CAPABILITIES = Capabilities(decoding_modes=("score_labels", "generate"),
                            train_methods=("none", "lora", "lora_cls"))
"""Both decoding modes and every training method; no native evaluation (the host's is the only one)."""


@hookimpl
def ftlab_register_backends(register):
    register("local_peft", _factory, LocalPeftConfig, CAPABILITIES)
