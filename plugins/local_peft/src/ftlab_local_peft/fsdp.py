"""``backend.distributed=fsdp``: the frozen base model sharded over the ranks (FSDP2), LoRA replicated.

DDP (:mod:`~ftlab_local_peft.distributed`) holds the whole base model on every rank. Under fsdp
rank 0 loads the base into host memory and the others build it on the meta device, each decoder
layer and the decoder itself become ``torch.distributed.fsdp.fully_shard`` units
(:func:`shard_model`) and rank 0's weights are broadcast into the shards on the devices
(:func:`load_sharded`): a rank keeps 1/N of the frozen weights, all-gathers a layer's weights just
before the layer runs and frees them after, in the forward pass and again in the backward pass. The LoRA adapters
are injected afterwards: small, whole on every rank and trained exactly as under ddp (each rank's
rows of every global batch, weighted by their share, one all-reduce of the adapter gradients per
step), so the numbers are ddp's, and so are checkpoints, resume and saved adapters. That is ZeRO-3
for the frozen base and plain data parallelism for the few trainable weights: what a base that
does not fit one device needs, with LoRA.

- **Lockstep.** Every forward of a sharded layer is a collective, so every rank runs the same
  forwards: a rank without rows in a small training batch runs one row with weight 0
  (:func:`lockstep`); prediction gives every rank the same number of rows (:func:`even_shard`,
  padded with a repeated row whose result is dropped), scores labels without the shared-prefix
  pass (its length depends on the rows) and generates with ``synced_gpus`` (a rank that finished
  keeps stepping until every rank has); the eval loss runs every row on every rank.
- **Tied embeddings** (the input embedding doubles as the LM head in SmolLM2) and an untied LM head
  are left whole on every rank (``ignored_params``): the methods call the LM head outside the
  decoder's forward.
- **Refused, by key**, when the backend starts: ``train.method=lora_cls`` (its cached frozen
  passes are per rank) and ``train.quantization`` (QLoRA under FSDP needs bitsandbytes' quantised
  storage in the shards).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ftlab_local_peft.modeling import decoder, unwrap


def active(group) -> bool:
    """This run shards the base model: several ranks and ``backend.distributed=fsdp``."""
    return group.active and group.mode == "fsdp"


def refuse(cfg) -> None:
    """What fsdp cannot do yet, refused before anything loads, each by its key."""
    from ftlab_local_peft.loading import enum_value

    bad = []
    method = enum_value(cfg.train.method)
    if method not in ("lora", "none"):
        bad.append(f"train.method={method} (use train.method=lora, or backend.distributed=ddp)")
    quant = enum_value(getattr(cfg.train, "quantization", "none"))
    if quant != "none":
        bad.append(f"train.quantization={quant} (QLoRA runs with ddp or alone)")
    if bad:
        raise ValueError("backend.distributed=fsdp does not support " + "; ".join(bad)
                         + " (docs/distributed.md, 'FSDP')")


def shard_model(model, device: torch.device):
    """Shard ``model``'s decoder (each layer, then the decoder) onto ``device``; the embeddings and
    the LM head stay whole. ``model`` may sit in host memory: only the shards reach the device (FSDP
    moves one layer at a time). A model on the meta device stays there (:func:`load_sharded`)."""
    from torch.distributed.fsdp import fully_shard

    lm, dec = unwrap(model), decoder(model)
    whole = {p for m in (lm.get_input_embeddings(), lm.get_output_embeddings()) if m is not None
             for p in m.parameters()}
    for layer in dec.layers:
        fully_shard(layer)
    fully_shard(dec, ignored_params=whole)
    if any(p.is_meta for p in model.parameters()):
        return model
    return model.to(device)  # what FSDP left whole (embeddings, LM head, buffers)


def load_sharded(load, group, device: torch.device):
    """The base model sharded over the ranks, read from disk once: rank 0 runs ``load()`` (into host
    memory), every other rank builds the same architecture on the meta device (no memory), all shard
    it, and rank 0's weights and buffers are broadcast into every rank's shards
    (``torch.distributed.checkpoint``'s ``broadcast_from_rank0``). Host memory holds one copy."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    model = load() if group.main else None
    box = [(model.config, next(model.parameters()).dtype) if group.main else None]
    dist.broadcast_object_list(box, src=0, group=group.cpu)
    if not group.main:
        from transformers import AutoModelForCausalLM

        config, dtype = box[0]
        with torch.device("meta"):  # rank 0's dtype, not the one the config names: the shards must match
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    full = model.state_dict() if group.main else {}
    model = shard_model(model, device)
    if not group.main:
        model.to_empty(device=device)
        model.tie_weights()  # to_empty gave the tied LM head storage of its own
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    del full
    for buf in model.buffers():  # not in the state dict (rotary frequencies): rank 0's, not to_empty's
        dist.broadcast(buf, src=0)
    return model.eval()


def weight_bytes(model) -> tuple[int, int]:
    """(bytes of weights this rank holds, bytes of the whole model's weights)."""
    here = whole = 0
    for p in model.parameters():
        local = p.to_local() if is_sharded(p) else p
        here += local.numel() * local.element_size()
        whole += p.numel() * p.element_size()
    return here, whole


def lockstep(batch: list[int], rows: list[int], share: float) -> tuple[list[int], float]:
    """A rank without rows of this batch still runs the layers' collectives: one row, weight 0."""
    return (rows, share) if rows else (batch[:1], 0.0)


def even_shard(rows: Sequence, rank: int, world: int) -> tuple[list, int]:
    """Rows ``rank::world``, padded to the longest rank's count with a repeated row; (rows, real count)."""
    mine, most = list(rows[rank::world]), -(-len(rows) // world)
    real = len(mine)
    if rows and real < most:
        mine += [mine[-1] if mine else rows[0]] * (most - real)
    return mine, real


def is_sharded(p) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(p, DTensor)
