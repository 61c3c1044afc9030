"""Resumable training state: the adapter, optimizer, scheduler, RNG states and loop position.

The loop (:mod:`ftlab_local_peft.loop`) writes a checkpoint every ``backend.checkpoint_steps``
optimizer steps and restores it when its :func:`fingerprint` matches the run. The data order is a
pure function of ``(train.seed, epoch)``, so the loop position is the step; resuming gives the same
final adapter as an uninterrupted run. Nothing in a checkpoint can run code when loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import shutil
from pathlib import Path

import torch

CHECKPOINT_DIR = "checkpoint"


def fingerprint(cfg, job) -> str:
    """What must match for a checkpoint to be resumable (train, model and backend config, data ids, prompt)."""
    key = json.dumps({"train": dataclasses.asdict(cfg.train), "model": dataclasses.asdict(cfg.model),
                      "backend": dataclasses.asdict(cfg.backend),
                      "ids": [ex.id for ex in job.train], "prompt": getattr(job.prompt, "sha256", "")},
                     default=str, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def rng_state() -> dict:
    """The RNG states as tensors, ints and a JSON string: loadable with ``weights_only=True``."""
    import numpy as np

    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "python": json.dumps({"version": version, "state": list(mt), "gauss_next": gauss}),
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(s: dict) -> None:
    import numpy as np

    torch.set_rng_state(s["torch"])
    py = json.loads(s["python"])
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    n = s["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if s.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def save_checkpoint(path: Path, model, opt, sched, state: dict, scaler=None) -> None:
    """Write adapter + optimizer/scheduler/RNG + loop state to ``path``, keeping the previous
    checkpoint until the new one is complete: write ``<path>.tmp``, rename ``path`` to
    ``<path>.old``, rename the tmp to ``path``, delete ``.old``. A crash at any point leaves a
    complete checkpoint at ``path`` or ``<path>.old`` (:func:`load_checkpoint` falls back to it).
    ``state.pt`` holds only tensors and plain containers (it loads with ``weights_only=True``), with
    fp16's grad scaler (its scale and growth tracker) when there is one, so a resumed fp16 run goes on
    with the scale it had reached instead of restarting at 65,536.
    The crash tests kill the process inside this function through :mod:`ftlab.faults`."""
    from ftlab.faults import kill_point

    tmp, old = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp / "adapter", save_embedding_layers=False)
    kill_point("checkpoint.partial", state.get("step"))
    blob = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng_state()}
    if scaler is not None:
        blob["scaler"] = scaler.state_dict()
    torch.save(blob, tmp / "state.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    kill_point("checkpoint.swap", state.get("step"))
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path, model, opt, sched, fingerprint: str, scaler=None) -> dict | None:
    """Restore a matching checkpoint into model/opt/sched, the grad scaler (fp16) and the RNGs; its
    loop state or None.

    Falls back to ``<path>.old`` when a crash came between the renames of :func:`save_checkpoint`.
    Nothing in it can run code: the adapter is safetensors, the loop state JSON and ``state.pt``
    is read with ``torch.load(weights_only=True)``; anything else there is refused with an error.
    """
    old = path.with_name(path.name + ".old")
    if not (path / "trainer_state.json").is_file():
        if not (old / "trainer_state.json").is_file():
            return None
        path = old  # the new checkpoint never completed; the previous one is whole
    else:
        shutil.rmtree(old, ignore_errors=True)
    state = json.loads((path / "trainer_state.json").read_text())
    if state.get("fingerprint") != fingerprint:
        import warnings

        warnings.warn(f"ignoring checkpoint {path}: it was written for another config or data")
        return None
    import pickle

    try:  # before anything is restored: a refused file leaves model and optimizer untouched
        blob = torch.load(path / "state.pt", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RuntimeError(
            f"refusing to load {path / 'state.pt'}: it holds more than tensors and plain containers, "
            f"so loading it could run code (torch.load weights_only=True said: "
            f"{str(exc).splitlines()[0][:300]}). ftlab never writes such a file; delete {path} to "
            f"train from the start") from None
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(path / "adapter" / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, weights)
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    if scaler is not None and blob.get("scaler"):
        scaler.load_state_dict(blob["scaler"])
    set_rng_state(blob["rng"])
    return state
