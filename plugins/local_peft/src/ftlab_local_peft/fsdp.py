"""``backend.distributed=fsdp``: the decoder's weights sharded over the ranks while training (FSDP2).

DDP (:mod:`~ftlab_local_peft.distributed`) holds the whole model on every rank. Under fsdp each
decoder layer and the decoder itself are ``torch.distributed.fsdp.fully_shard`` units: a rank keeps
1/N of every layer's weights (frozen base and LoRA alike) and the LoRA optimizer state of its
shards, all-gathers a layer's weights just before the layer runs and frees them after, and
reduce-scatters the layer's gradients in the backward pass. Everything else is the loop's, as for
ddp: each rank takes rows ``rank::N`` of every global batch and weights its loss by their share.
FSDP *averages* the gradients over the ranks (a sum with another divide factor needs PREMUL_SUM,
which gloo lacks), so the loop multiplies each rank's loss by N (:func:`loss_scale`) and the whole
parameters outside the shards are averaged too: the gradients are the global batch's, as in ddp.

- **Lockstep.** Every forward of a sharded layer is a collective, so every rank runs the same
  forwards: a rank left without rows in a small batch runs one row with weight 0 (the loop asks
  :func:`lockstep`), and the eval loss runs all its rows on every rank.
- **Tied embeddings** (the input embedding doubles as the LM head in SmolLM2) are left out of the
  shards (``ignored_params``): they stay whole on every rank, and the methods call the LM head
  outside the decoder's forward. They are frozen under LoRA.
- **Clipping** takes the norm over sharded and whole gradients together (:func:`clip_grad_norm`).
- **After training** the trained LoRA weights are gathered (:func:`gather_trainable`: every rank
  holds the whole adapter and saves it), the sharded model is dropped and the base is loaded again,
  so prediction runs on whole weights, each rank on its rows with no collective per forward. The
  model must therefore fit one device for prediction (not for training).
- **Refused at the start of training**, each naming its key: ``train.method=lora_cls`` (its cached
  frozen passes differ per rank), ``train.quantization`` (QLoRA with FSDP needs bitsandbytes'
  quantised storage in the shards), fp16 (the grad scaler would need FSDP's sharded variant; bf16
  needs none).
- **Checkpoints** (``backend.checkpoint_steps``): every rank gathers the whole trainable weights and
  the optimizer state by parameter name (:func:`checkpoint_state`), rank 0 writes them as a ddp run
  would; on resume every rank puts its part back into its shards (:func:`restore`). A checkpoint
  holds whole tensors, so a resumed launch does not depend on how the shards were cut.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch

from ftlab_local_peft.modeling import decoder, unwrap


def active(group) -> bool:
    """This run shards the model: several ranks and ``backend.distributed=fsdp``."""
    return group.active and group.mode == "fsdp"


def refuse(cfg, method: str, rt) -> None:
    """What fsdp cannot do yet, refused before the model is sharded, each by its key."""
    from ftlab_local_peft.loading import enum_value

    bad = []
    if method != "lora":
        bad.append(f"train.method={method} (use train.method=lora, or backend.distributed=ddp)")
    if enum_value(getattr(cfg.train, "quantization", "none")) != "none":
        bad.append(f"train.quantization={enum_value(cfg.train.quantization)} (QLoRA runs with ddp or alone)")
    if rt.amp == torch.float16:
        bad.append("fp16 (backend.dtype, or auto on a GPU without bf16): use backend.dtype=bfloat16 or float32")
    if bad:
        raise ValueError("backend.distributed=fsdp does not support " + "; ".join(bad)
                         + " (docs/distributed.md, 'FSDP')")


def shard(plan):
    """Shard ``plan.model``'s decoder (each layer, then the decoder) and return the plan with its
    parameters replaced by the sharded ones (the optimizer must be built on those)."""
    from torch.distributed.fsdp import fully_shard

    names = {id(p): n for n, p in plan.model.named_parameters()}
    lm, dec = unwrap(plan.model), decoder(plan.model)
    whole = {p for m in (lm.get_input_embeddings(), lm.get_output_embeddings()) if m is not None
             for p in m.parameters()}
    for layer in dec.layers:
        fully_shard(layer)
    fully_shard(dec, ignored_params=whole)
    new = dict(plan.model.named_parameters())

    def remap(params):
        return [new[names[id(p)]] for p in params]

    groups = [{**g, "params": remap(g["params"])} for g in plan.param_groups] if plan.param_groups else None
    return dataclasses.replace(plan, params=remap(plan.params), param_groups=groups)


def is_sharded(p) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(p, DTensor)


def loss_scale(group) -> int:
    """What each rank's loss is multiplied by so that FSDP's mean over the ranks is their sum."""
    return group.world if active(group) else 1


def lockstep(batch: list[int], rows: list[int], share: float) -> tuple[list[int], float]:
    """A rank without rows of this batch still runs the layers' collectives: one row, weight 0."""
    return (rows, share) if rows else (batch[:1], 0.0)


def clip_grad_norm(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` over sharded (DTensor) and whole gradients together."""
    sharded = [p for p in params if is_sharded(p) and p.grad is not None]
    whole = [p for p in params if not is_sharded(p) and p.grad is not None]
    if not sharded:
        return torch.nn.utils.clip_grad_norm_(whole, max_norm)
    sq = torch.nn.utils.get_total_norm([p.grad for p in sharded]).full_tensor().float() ** 2
    if whole:
        sq = sq + torch.nn.utils.get_total_norm([p.grad for p in whole]).float().to(sq.device) ** 2
    total = sq.sqrt()
    if math.isfinite(float(total)):
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for p in sharded + whole:
            p.grad.mul_(coef.item())
    return total


def gather_trainable(model) -> dict[str, torch.Tensor]:
    """Every trainable parameter whole, on every rank (a collective: all ranks call it), by name."""
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            out[name] = (p.full_tensor() if is_sharded(p) else p).detach().cpu().clone()
    return out


def checkpoint_state(model, opt) -> tuple[dict, dict]:
    """(whole trainable weights, whole optimizer state keyed by parameter name): a collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    optim = get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return gather_trainable(model), optim


def restore(model, opt, trainable: dict, optim: dict) -> None:
    """Put whole weights and optimizer state (:func:`checkpoint_state`) back into this rank's shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
    from torch.distributed.tensor import distribute_tensor

    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if name not in trainable:
                raise RuntimeError(f"the checkpoint has no weights for {name}: it was written for another model")
            whole = trainable[name].to(device=p.device, dtype=p.dtype)
            if is_sharded(p):  # this rank's slice of the whole tensor, cut as FSDP cut it (no collective)
                p.to_local().copy_(distribute_tensor(whole, p.device_mesh, p.placements,
                                                     src_data_rank=None).to_local())
            else:
                p.copy_(whole)
    set_optimizer_state_dict(model, opt, optim, options=StateDictOptions(full_state_dict=True))
