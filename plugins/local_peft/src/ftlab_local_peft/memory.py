"""Peak training memory, estimated before the first step and checked against the device's free memory.

An out-of-memory crash half-way through the first batch says nothing about which knob to turn. So
before training, :func:`check_plan_memory` estimates the peak (weights in their dtype as loaded, the
LoRA weights, their gradients and AdamW state, the activations of one batch of the longest items:
over N ranks, each rank's ``batch_size / N`` rows),
prints it, and refuses with an error naming the keys that lower it when it exceeds the free memory:

    est = estimate(weight_bytes=..., trainable=..., layers=..., hidden=..., ...)
    check(est, free_bytes=8 << 30, device="cuda:0 (NVIDIA L4)", cfg=cfg)   # MemoryEstimateError

The activation term counts, per decoder layer and token, the fp32 residual stream and norm inputs
(8·h bytes) and the half- or full-precision tensors autograd keeps for the attention and MLP
matmuls (e·(7·h + 4·i)), plus the attention probabilities (2·heads·seq·e) an eager or math-kernel
attention stores; with gradient checkpointing only each layer's input is kept, and one layer is
recomputed at a time. It is an estimate (fused attention kernels store less), meant to be on the
safe side by a modest margin, not to the byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

GIB = 1 << 30
MARGIN = 1.10
"""Allocator fragmentation and workspace: the estimate is multiplied by this."""
CUDA_CONTEXT = 512 << 20
"""A CUDA context and its kernels take about this much device memory outside torch's allocator."""
LOSS_POSITIONS = 64
"""Answer positions per item whose vocabulary logits (and their gradient) are held at once."""


class MemoryEstimateError(RuntimeError):
    """Training would need more memory than the device has free."""


@dataclass(frozen=True)
class Estimate:
    """Bytes, per part; :attr:`total` includes the margin and a CUDA context."""

    weights: int
    """The model as loaded (frozen base in its dtype, or quantised)."""
    trainable: int
    """LoRA (and head) weights."""
    gradients: int
    optimizer: int
    """AdamW: two moments per trainable weight."""
    activations: int
    """One batch of the longest items, kept for the backward pass."""
    logits: int
    overhead: int = 0
    """A CUDA context."""

    @property
    def total(self) -> int:
        parts = self.weights + self.trainable + self.gradients + self.optimizer + self.activations + self.logits
        return int(parts * MARGIN) + self.overhead

    @property
    def beyond_weights(self) -> int:
        """What training adds to a loaded model (the weights already sit in the free-memory reading)."""
        return self.total - self.weights

    def describe(self) -> str:
        parts = ("weights", "trainable", "gradients", "optimizer", "activations", "logits", "overhead")
        return ", ".join(f"{p} {getattr(self, p) / GIB:.2f}" for p in parts) + \
            f" → peak ≈ {self.total / GIB:.2f} GiB (×{MARGIN} margin)"


def estimate(*, weight_bytes: int, trainable: int, trainable_bytes: int = 4, layers: int, hidden: int,
             intermediate: int, heads: int, vocab: int, batch: int, seq: int, act_bytes: int,
             checkpointing: bool, cuda: bool = False) -> Estimate:
    """The peak of one training step (see the module docstring for the activation term)."""
    per_token_layer = 8 * hidden + act_bytes * (7 * hidden + 4 * intermediate) + 2 * heads * seq * act_bytes
    full_layer = batch * seq * per_token_layer
    if checkpointing:
        acts = layers * batch * seq * hidden * 4 + full_layer  # kept layer inputs + the one being recomputed
    else:
        acts = layers * full_layer
    logits = batch * min(seq, LOSS_POSITIONS) * vocab * 4 * 2
    t = trainable * trainable_bytes
    return Estimate(weights=weight_bytes, trainable=t, gradients=t, optimizer=2 * t, activations=acts,
                    logits=logits, overhead=CUDA_CONTEXT if cuda else 0)


def advice(cfg, est: Estimate) -> list[str]:
    """The keys that lower the estimate, most effective first for this estimate."""
    tc, bc = cfg.train, cfg.backend
    out = [f"train.batch_size={max(1, tc.batch_size // 2)} (now {tc.batch_size}; raise "
           f"train.gradient_accumulation_steps to keep the effective batch)",
           f"prompt.max_input_tokens (now {cfg.prompt.max_input_tokens}): shorter items"]
    if not bc.gradient_checkpointing:
        out.insert(1 if est.activations > est.weights else 2,
                   "backend.gradient_checkpointing=true (keeps one layer's activations, ~30% slower)")
    if getattr(tc, "quantization", "none") == "none":
        out.append("train.quantization=4bit (QLoRA, CUDA only: base weights at ~0.5 byte each)")
    out.append("backend.memory_limit_gib=N to check against another budget, or backend.memory_check=false "
               "to train anyway")
    return out


def check(est: Estimate, free_bytes: Optional[int], device: str, cfg) -> None:
    """Raise :class:`MemoryEstimateError` when what training adds exceeds ``free_bytes`` (None: unknown,
    nothing is checked). The loaded weights already sit in the free reading, so only the rest counts."""
    if free_bytes is None or est.beyond_weights <= free_bytes:
        return
    raise MemoryEstimateError(
        f"training would need about {est.beyond_weights / GIB:.2f} GiB beyond the loaded weights on {device}, "
        f"which has {free_bytes / GIB:.2f} GiB free ({est.describe()}). Lower it with:\n  - "
        + "\n  - ".join(advice(cfg, est)))


def _config_dims(model) -> dict:
    c = getattr(model, "config", None)
    c = c.get_text_config() if hasattr(c, "get_text_config") else c
    hidden = getattr(c, "hidden_size", 0) or 0
    return {"layers": getattr(c, "num_hidden_layers", 0) or 0, "hidden": hidden,
            "intermediate": getattr(c, "intermediate_size", 0) or 4 * hidden,
            "heads": getattr(c, "num_attention_heads", 0) or 1, "vocab": getattr(c, "vocab_size", 0) or 0}


def estimate_plan(plan, session) -> Estimate:
    """:func:`estimate` for a method's :class:`~ftlab_local_peft.loop.Plan` on the session's runtime."""
    model, cfg, rt = plan.model, session.cfg, session.rt
    trainable = {id(p) for p in plan.params}
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in trainable)
    frozen += sum(b.numel() * b.element_size() for b in model.buffers())
    n_train = sum(p.numel() for p in plan.params)
    t_bytes = plan.params[0].element_size() if plan.params else 4
    from ftlab_local_peft.distributed import current

    world = current().world  # over N ranks each runs its rows of a batch: the activations are per rank
    batch = min(cfg.train.batch_size, max(1, len(plan.lengths)))
    return estimate(weight_bytes=frozen, trainable=n_train, trainable_bytes=t_bytes, **_config_dims(model),
                    batch=-(-batch // world),
                    seq=max(plan.lengths, default=1), act_bytes=2 if rt.amp is not None else 4,
                    checkpointing=bool(cfg.backend.gradient_checkpointing), cuda=rt.device.type == "cuda")


def check_plan_memory(plan, session) -> Optional[Estimate]:
    """Estimate, print, tag and check (``backend.memory_check``, ``backend.memory_limit_gib``)."""
    from ftlab_local_peft.hardware import free_memory

    bc, rt = session.cfg.backend, session.rt
    if not getattr(bc, "memory_check", True):
        return None
    est = estimate_plan(plan, session)
    limit = getattr(bc, "memory_limit_gib", 0) or 0
    if limit > 0:
        free, where = int(limit * GIB) - est.weights, f"backend.memory_limit_gib={limit:g}"
    else:
        free = free_memory(rt.info) if rt.info is not None else None
        where = "free memory now"
    name = f"{rt.device}" + (f" ({rt.info.name})" if rt.info is not None and rt.info.name else "")
    print(f"[local_peft] memory estimate on {name}: {est.describe()}; "
          + (f"{where}: {free / GIB:.2f} GiB beyond the weights" if free is not None else "free memory unknown"))
    session.ctx.set_tags({"local_peft.memory_estimate_gib": f"{est.total / GIB:.3f}",
                          **({"local_peft.memory_free_gib": f"{free / GIB:.3f}"} if free is not None else {})})
    check(est, free, name, session.cfg)
    return est
