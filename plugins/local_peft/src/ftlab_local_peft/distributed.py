"""One training run over several processes: every multi-process concern of the backend in one place.

A launcher starts N processes of one run (``ftlab launch --nproc N``: torchrun; or Ray Train, from
``backend.ray_train``), each of which builds this backend. Rank 0 runs the host as a single process
would (stages, evaluator, MLflow, run folder); every other rank *follows*: the host hands it to
:meth:`~ftlab_local_peft.backend.LocalPeftBackend.follow`, which does its share of each call rank 0
makes (:meth:`Group.send` / :func:`serve`), until rank 0's run ends (:func:`finish`).

- **Training** (:mod:`~ftlab_local_peft.loop` calls :meth:`Group.part` and :meth:`Group.sum_grads`):
  ``train.batch_size`` stays the *global* batch. Each rank takes rows ``rank::world`` of every
  batch, weights its mean loss by its rows' share of the batch, and one all-reduce per optimizer
  step sums the gradients (plus the step's loss and tokens). That is DistributedDataParallel's
  arithmetic; the wrapper itself is not used, because it synchronises only inside its own
  ``forward`` and the methods call the model's submodules. Clipping, AdamW and the schedule then
  see the same gradients on every rank, so the adapters stay equal, and they equal a single-process
  run up to float summation order.
- **fsdp** (``backend.distributed=fsdp``): the same training, with the frozen base model sharded
  over the ranks and every forward in lockstep (:mod:`~ftlab_local_peft.fsdp`).
- **Prediction**: each rank predicts rows ``rank::world``; rank 0 gathers the parts back into the
  input order (:meth:`Group.gather`), so the evaluator sees every row exactly once.
- **Files**: only rank 0 writes checkpoints and the run folder. A follower writes into its own
  temporary folder; a checkpoint being resumed, a tuned adapter it did not train itself and the
  tiny model's tokenizer reach it as bytes from rank 0 (:meth:`Group.share`), so no shared file
  system is needed.

Commands and gathers go through a gloo group (objects are pickled: the ranks of one run trust each
other, as torch.distributed's own object collectives assume); tensors through the default group
(nccl on CUDA, gloo on CPU).
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime
import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import torch

STOP = "stop"


@dataclasses.dataclass
class Group:
    """This process's place in the run: rank, world size, how to reach the others."""

    rank: int = 0
    world: int = 1
    mode: str = "ddp"
    cpu: Any = None
    """The gloo process group for commands and objects (None when alone)."""
    aliases: dict = dataclasses.field(default_factory=dict)
    """Follower: rank 0's adapter folder → this rank's copy (trained here in lockstep, or received)."""
    closed: bool = False

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    # ---------------------------------------------------------------- commands
    def send(self, name: str, args: tuple, labels: Sequence[str]) -> None:
        """Rank 0: tell the followers to make the same call (with rank 0's resolved label list)."""
        import torch.distributed as dist

        dist.broadcast_object_list([(name, args, list(labels))], src=0, group=self.cpu)

    def receive(self) -> tuple:
        import torch.distributed as dist

        box: list = [None]
        dist.broadcast_object_list(box, src=0, group=self.cpu)
        return box[0]

    def close(self) -> None:
        """Rank 0: release the followers (their ``follow()`` returns); every rank: leave the group."""
        if self.closed or not self.active:
            return
        self.closed = True
        import torch.distributed as dist

        if not dist.is_initialized():
            return
        if self.main:
            dist.broadcast_object_list([(STOP, (), [])], src=0, group=self.cpu)

    # ---------------------------------------------------------------- training
    def part(self, batch: list[int], weights: Sequence[float] | None) -> tuple[list[int], float]:
        """This rank's rows of a global batch and their share of it (row weights, else row count)."""
        if not self.active:
            return batch, 1.0
        mine = batch[self.rank::self.world]
        if weights is None:
            return mine, len(mine) / len(batch)
        total = sum(weights[i] for i in batch)
        return mine, (sum(weights[i] for i in mine) / total) if total > 0 else len(mine) / len(batch)

    def sum_grads(self, params: Sequence[torch.Tensor], loss: float, tokens: int) -> tuple[float, int]:
        """Sum every rank's gradients (one flat all-reduce), and the step's loss and tokens."""
        if not self.active:
            return loss, tokens
        import torch.distributed as dist

        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                          for p in params] + [torch.tensor([loss, float(tokens)], device=params[0].device)])
        dist.all_reduce(flat)
        at = 0
        for p in params:
            n = p.numel()
            p.grad = flat[at:at + n].view_as(p).to(p.dtype)
            at += n
        return float(flat[at]), int(round(float(flat[at + 1])))

    # ---------------------------------------------------------------- prediction
    def shard(self, rows: Sequence) -> tuple[Sequence, int]:
        """This rank's rows ``rank::world`` and how many of them are real: under fsdp every rank gets
        as many (a repeated row pads the short ones; its result is dropped), since every forward of the
        sharded model is a collective."""
        if not self.active:
            return rows, len(rows)
        if self.mode == "fsdp":
            from ftlab_local_peft.fsdp import even_shard

            return even_shard(rows, self.rank, self.world)
        mine = rows[self.rank::self.world]
        return mine, len(mine)

    def gather(self, items: Sequence, n: int) -> list | None:
        """Rank 0: every rank's :meth:`shard` results (its real rows') back in input order; followers: None."""
        import torch.distributed as dist

        parts: list | None = [None] * self.world if self.main else None
        dist.gather_object(list(items), parts, dst=0, group=self.cpu)
        if not self.main:
            return None
        out: list = [None] * n
        for r, part in enumerate(parts):
            out[r::self.world] = part
        return out

    # ---------------------------------------------------------------- files
    def share(self, src: Path, dest: Path, names: Sequence[str] = ("",)) -> None:
        """Rank 0's files under ``src/<name>`` written under ``dest/<name>`` on the followers."""
        import torch.distributed as dist

        box: list = [None]
        if self.main:
            box[0] = {str(f.relative_to(src)): f.read_bytes() for name in names if (src / name).exists()
                      for f in ([src / name] if (src / name).is_file() else sorted((src / name).rglob("*")))
                      if f.is_file()}
        dist.broadcast_object_list(box, src=0, group=self.cpu)
        if not self.main:
            for rel, data in box[0].items():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                (dest / rel).write_bytes(data)

    def checkpoint(self, path: Path) -> None:
        """Before a (possibly resumed) fit: followers get rank 0's checkpoint, and its ``.old`` fallback."""
        if self.active:
            self.share(path.parent, path.parent, (path.name, path.name + ".old"))

    def adapter(self, uri: str, scratch: Path) -> str:
        """The local folder of rank 0's adapter ``uri`` on this rank (collective; rank 0: ``uri``)."""
        import torch.distributed as dist

        if not self.active:
            return uri
        have = uri if self.main else self.aliases.get(uri) or (
            uri if (Path(uri) / "adapter_config.json").is_file() else None)
        found: list = [None] * self.world
        dist.all_gather_object(found, have is not None, group=self.cpu)
        if all(found):
            return have
        dest = scratch / "adapters" / hashlib.sha256(uri.encode()).hexdigest()[:16]
        self.share(Path(uri), dest)
        if have is None:
            self.aliases[uri] = have = str(dest)
        return have


_CURRENT = Group()


def current() -> Group:
    """This process's group (a single-process one until :func:`setup` joined a launched run)."""
    return _CURRENT


def setup(backend_cfg) -> Group:
    """Join the run's process group when a launcher started several processes (``WORLD_SIZE`` > 1,
    or a group Ray Train already made); else the single-process group."""
    global _CURRENT
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    mode = getattr(backend_cfg.distributed, "value", backend_cfg.distributed)
    if _CURRENT.active and not _CURRENT.closed:
        return _CURRENT
    if not dist.is_available() or (world <= 1 and not dist.is_initialized()):
        _CURRENT = Group(mode=mode)
        return _CURRENT
    cuda = torch.cuda.is_available() and str(backend_cfg.device) in ("auto", "cuda")
    if cuda:  # one device per process: the device "cuda" then means this rank's (Ray may show one GPU only)
        local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        torch.cuda.set_device(local if local < count else 0)
    if not dist.is_initialized():  # torchrun: env:// rendezvous; Ray Train made the group already
        dist.init_process_group("nccl" if cuda else "gloo",
                                timeout=datetime.timedelta(seconds=backend_cfg.distributed_timeout_s))
    cpu = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
    _CURRENT = Group(rank=dist.get_rank(), world=dist.get_world_size(), mode=mode, cpu=cpu)
    if _CURRENT.main:
        atexit.register(_CURRENT.close)
    return _CURRENT


def finish() -> None:
    """The host's run has ended (the plugin's ``ftlab_run_finished``): release the followers."""
    _CURRENT.close()


def serve(backend) -> None:
    """A follower's whole run: make each call rank 0 sends, until it sends :data:`STOP`."""
    group = current()
    while True:
        name, args, labels = group.receive()
        if name == STOP:
            return
        backend.cfg.data.labels = labels  # labels=auto is resolved by rank 0's host
        getattr(backend, name)(*args)
