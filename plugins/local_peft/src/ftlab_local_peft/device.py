"""Where and in what precision the model runs: every device concern of the backend in one place.

:func:`make_runtime` turns ``backend.device`` / ``backend.dtype`` / ``backend.num_threads`` into a
:class:`Runtime` (and the tags that record the choice); every forward pass, training step and
generation runs under :func:`autocast` with that runtime, so a new device or precision policy is a
change here, not in each method.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Runtime:
    """How to run the model (device, autocast, progress bar)."""

    device: torch.device
    bf16: bool = False
    progress: bool = True

    def quiet(self) -> "Runtime":
        """The same runtime without progress bars (for small inner passes)."""
        return Runtime(self.device, self.bf16, False)


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; ``xla`` → the torch_xla device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "xla":
        import torch_xla.core.xla_model as xm  # optional, only on TPU hosts

        return xm.xla_device()
    return torch.device(name)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast context when enabled (and supported), else a no-op."""
    if enabled and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_runtime(backend_cfg) -> tuple[Runtime, dict[str, str]]:
    """The run's :class:`Runtime` from ``cfg.backend`` and the tags recording the choice and why."""
    from ftlab_local_peft.dtype_probe import choose_dtype

    if backend_cfg.num_threads > 0:
        torch.set_num_threads(backend_cfg.num_threads)
    device = resolve_device(backend_cfg.device)
    dtype, reason = choose_dtype(device, backend_cfg.dtype)
    rt = Runtime(device, dtype == torch.bfloat16, backend_cfg.progress)
    tags = {"local_peft.device": str(device), "local_peft.dtype": "bfloat16" if rt.bf16 else "float32",
            "local_peft.dtype_reason": reason, "local_peft.threads": str(torch.get_num_threads())}
    return rt, tags
