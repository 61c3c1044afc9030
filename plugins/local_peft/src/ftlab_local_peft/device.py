"""Where and in what precision the model runs: every device concern of the backend in one place.

:func:`make_runtime` turns ``backend.device`` / ``backend.dtype`` / ``backend.num_threads`` into a
:class:`Runtime` (and the tags that record the choice and why): the choices themselves are the pure
functions of :mod:`~ftlab_local_peft.hardware` over this machine's device description. Every forward
pass, training step and generation runs under :func:`autocast` with that runtime (``rt.amp``), and
the training loop steps the optimizer through :meth:`Runtime.stepper` (a grad scaler in fp16, the
XLA step marker on a TPU), so a new device or precision policy is a change here, not in each method.
Weights stay fp32 (a quantised base excepted); bf16/fp16 apply to the matmuls under autocast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch

TAG = "local_peft"
"""Prefix of the runtime tags (``local_peft.device``, ``local_peft.dtype`` …)."""


@dataclass(frozen=True)
class Runtime:
    """How to run the model (device, autocast dtype, progress bar, the device's description)."""

    device: torch.device
    bf16: bool = False
    progress: bool = True
    fp16: bool = False
    """fp16 autocast; training then scales the loss (:meth:`stepper`)."""
    info: Optional[Any] = None
    """The :class:`~ftlab_local_peft.hardware.DeviceInfo` the device was chosen from."""
    sharded: bool = False
    """The model is FSDP-sharded (:mod:`~ftlab_local_peft.fsdp`): gradient-free passes run under
    ``no_grad``, since FSDP's all-gather buffers made under ``inference_mode`` break a later training."""

    def inference(self):
        """The context of a gradient-free pass: ``inference_mode``, or ``no_grad`` on a sharded model."""
        return torch.no_grad() if self.sharded else torch.inference_mode()

    def quiet(self) -> "Runtime":
        """The same runtime without progress bars (for small inner passes)."""
        return dataclasses.replace(self, progress=False)

    @property
    def amp(self) -> Optional[torch.dtype]:
        """The autocast dtype (bf16 / fp16), or None for fp32."""
        return torch.bfloat16 if self.bf16 else torch.float16 if self.fp16 else None

    @property
    def dtype_name(self) -> str:
        return str(self.amp or torch.float32).removeprefix("torch.")

    def stepper(self) -> "Stepper":
        """The training loop's backward / unscale / optimizer step for this runtime."""
        return Stepper(self)


class Stepper:
    """Backward and optimizer step: loss scaling in fp16 (``torch.amp.GradScaler``), ``mark_step``
    after each optimizer step on XLA, plain ``backward()`` / ``opt.step()`` otherwise."""

    def __init__(self, rt: Runtime):
        self.scaler = torch.amp.GradScaler(rt.device.type) if rt.fp16 else None
        self.xla = rt.device.type == "xla"

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, opt) -> None:
        """Before clipping: gradients back to their true scale."""
        if self.scaler is not None:
            self.scaler.unscale_(opt)

    def step(self, opt) -> None:
        if self.scaler is not None:
            self.scaler.step(opt)  # skipped (and the scale lowered) when a gradient overflowed
            self.scaler.update()
        else:
            opt.step()
        if self.xla:
            import torch_xla.core.xla_model as xm  # optional, only on TPU hosts

            xm.mark_step()


def torch_device(info) -> torch.device:
    """The ``torch.device`` of a :class:`~ftlab_local_peft.hardware.DeviceInfo`."""
    if info.type == "xla":
        import torch_xla  # optional, only on TPU hosts

        return torch_xla.device() if hasattr(torch_xla, "device") else torch.device(info.torch_name)
    return torch.device(info.torch_name)


def resolve_device(name: str, devices=None) -> torch.device:
    """``backend.device`` → a ``torch.device`` (see :func:`~ftlab_local_peft.hardware.select_device`)."""
    from ftlab_local_peft.hardware import describe_devices, select_device

    return torch_device(select_device(name, describe_devices() if devices is None else devices)[0])


def autocast(device: torch.device, enabled):
    """Autocast to ``enabled`` (a dtype: ``rt.amp``; True means bf16), else a no-op."""
    dtype = torch.bfloat16 if enabled is True else enabled or None
    if dtype is not None and device.type in ("cpu", "cuda", "xla", "mps"):
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


def make_runtime(backend_cfg, devices=None, cpu_policy=None) -> tuple[Runtime, dict[str, str]]:
    """The run's :class:`Runtime` from ``cfg.backend`` and the tags recording the choices and why.

    ``devices``: a device description (default: this machine's); ``cpu_policy``: see
    :func:`~ftlab_local_peft.hardware.select_dtype` (both for tests)."""
    from ftlab_local_peft.hardware import describe_devices, select_device, select_dtype

    if backend_cfg.num_threads > 0:
        torch.set_num_threads(backend_cfg.num_threads)
    rank = os.environ.get("LOCAL_RANK")  # set by torchrun / accelerate launch: one process per GPU
    info, device_reason = select_device(backend_cfg.device, describe_devices() if devices is None else devices,
                                        int(rank) if rank is not None and rank.isdigit() else None)
    dtype, dtype_reason = select_dtype(backend_cfg.dtype, info, cpu_policy)
    rt = Runtime(torch_device(info), dtype == "bfloat16", backend_cfg.progress, dtype == "float16", info)
    tags = {f"{TAG}.device": str(rt.device), f"{TAG}.device_reason": device_reason, **info.tags(TAG),
            f"{TAG}.dtype": dtype, f"{TAG}.dtype_reason": dtype_reason,
            f"{TAG}.grad_scaler": "true" if rt.fp16 else "false",
            f"{TAG}.threads": str(torch.get_num_threads())}
    return rt, tags
