"""Which device and precision a run uses: pure choices over a *device description*, and the probe that
describes this machine.

:func:`describe_devices` lists what this machine has (CUDA GPUs with their capability, memory and
driver; a TPU only when ``torch_xla`` imports and finds one; Apple's MPS; the CPU). :func:`select_device`
and :func:`select_dtype` are pure functions of ``backend.device`` / ``backend.dtype`` and such a list,
so tests hand them faked descriptions (``[{"type": "cuda", "capability": (7, 5)}, {"type": "cpu"}]``)
instead of patching torch. Each returns its choice and the reason, which the run records.

    devices = describe_devices()
    info, why = select_device("auto", devices)      # cuda > xla (TPU) > mps > cpu
    dtype, why = select_dtype("auto", info)         # bf16 / fp16 (+ grad scaler) / fp32
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps", "xla")
"""``backend.device`` values (``cuda:N`` with N a GPU index)."""
DTYPES = {"auto": "auto", "fp32": "float32", "float32": "float32", "bf16": "bfloat16",
          "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16"}
"""``backend.dtype`` spellings → the dtype name a run records."""
AUTO_ORDER = ("cuda", "xla", "mps", "cpu")
"""What ``backend.device=auto`` prefers, first present wins."""
BF16_CAPABILITY = (8, 0)
"""CUDA compute capability from which bf16 is native (Ampere)."""
FP16_CAPABILITY = (7, 0)
"""From here fp16 has tensor cores (Volta, Turing): ``auto`` trains in fp16 with a grad scaler."""
GIB = 1 << 30


class DeviceError(ValueError):
    """``backend.device`` / ``backend.dtype`` asks for what this machine does not have."""


@dataclass(frozen=True)
class DeviceInfo:
    """One device as :func:`describe_devices` sees it (or as a test fakes it)."""

    type: str
    """cuda, xla, mps or cpu."""
    index: Optional[int] = None
    """GPU / TPU core index; None for mps and cpu."""
    name: str = ""
    """Marketing name (``NVIDIA H100 80GB HBM3``, the CPU model …)."""
    capability: Optional[tuple[int, int]] = None
    """CUDA compute capability."""
    total_memory: Optional[int] = None
    """Bytes."""
    free_memory: Optional[int] = None
    """Bytes free when described (CUDA: ``mem_get_info``; CPU: MemAvailable)."""
    driver: Optional[str] = None
    """NVIDIA driver version (nvidia-smi), else the CUDA driver API version."""
    cuda: Optional[str] = None
    """CUDA runtime torch was built with."""
    bf16: Optional[bool] = None
    """CPU: has native bf16 instructions (avx512_bf16/amx_bf16); None: decided by the type."""

    @classmethod
    def of(cls, d) -> "DeviceInfo":
        """From a mapping (a faked description) or a DeviceInfo."""
        if isinstance(d, DeviceInfo):
            return d
        d = dict(d)
        if d.get("capability") is not None:
            d["capability"] = tuple(int(x) for x in d["capability"])
        return cls(**d)

    @property
    def torch_name(self) -> str:
        """What ``torch.device`` takes: ``cuda:0``, ``xla:0``, ``mps``, ``cpu``."""
        if self.type in ("cuda", "xla"):
            return f"{self.type}:{self.index or 0}"
        return self.type

    def tags(self, prefix: str) -> dict[str, str]:
        """``<prefix>.device_*`` tags: name, type, memory (GiB), capability, driver, CUDA."""
        out = {f"{prefix}.device_type": self.type, f"{prefix}.device_name": self.name or self.type}
        if self.total_memory:
            out[f"{prefix}.device_memory_gib"] = f"{self.total_memory / GIB:.1f}"
        if self.free_memory is not None:
            out[f"{prefix}.device_free_gib"] = f"{self.free_memory / GIB:.1f}"
        if self.capability:
            out[f"{prefix}.cuda_capability"] = f"{self.capability[0]}.{self.capability[1]}"
        if self.driver:
            out[f"{prefix}.cuda_driver"] = self.driver
        if self.cuda:
            out[f"{prefix}.cuda_version"] = self.cuda
        return out

    def asdict(self) -> dict:
        return asdict(self)


def _listing(devices: Sequence[DeviceInfo]) -> str:
    return ", ".join(d.torch_name + (f" ({d.name})" if d.name else "") for d in devices) or "none"


def select_device(requested: str, devices: Iterable, local_rank: Optional[int] = None) -> tuple[DeviceInfo, str]:
    """``(device, reason)`` for ``backend.device=requested`` among ``devices`` (descriptions).

    ``auto``: the first type of :data:`AUTO_ORDER` present (GPU 0 of several). Under a launcher that
    starts one process per GPU (``local_rank``: torchrun's ``LOCAL_RANK``), ``auto`` and ``cuda`` take
    GPU ``local_rank``. An explicit type or ``cuda:N`` that the list lacks is a :class:`DeviceError`
    naming the key and what is there."""
    devs = [DeviceInfo.of(d) for d in devices]
    req = str(requested).strip().lower()
    if req == "auto":
        for kind in AUTO_ORDER:
            found = [d for d in devs if d.type == kind]
            if found:
                skipped = AUTO_ORDER[:AUTO_ORDER.index(kind)]
                why = f"auto: {kind} is present" + (f" (no {'/'.join(skipped)})" if skipped else "")
                return _ranked(found, local_rank, why, kind)
        raise DeviceError("backend.device=auto: no device described (not even a cpu)")
    kind, _, index = req.partition(":")
    if kind not in AUTO_ORDER or (index and not index.isdigit()):
        raise DeviceError(f"backend.device={requested!r}: use one of {', '.join(DEVICES)}")
    found = [d for d in devs if d.type == kind and (not index or (d.index or 0) == int(index))]
    if not found:
        hint = {"cuda": "no CUDA GPU is visible (CUDA_VISIBLE_DEVICES, driver, a CPU-only torch?)",
                "xla": "torch_xla is not installed or finds no TPU",
                "mps": "MPS needs Apple silicon and a torch built with it"}.get(kind, "")
        raise DeviceError(f"backend.device={requested}: not on this machine; it has {_listing(devs)}"
                          + (f" — {hint}" if hint else "") + "; use backend.device=auto to take what is there")
    return _ranked(found, local_rank if not index else None, "requested", kind)


def _ranked(found: list[DeviceInfo], local_rank: Optional[int], why: str, kind: str) -> tuple[DeviceInfo, str]:
    if kind == "cuda" and local_rank is not None:
        mine = [d for d in found if (d.index or 0) == local_rank]
        if not mine and len(found) == 1:  # the launcher gave each process its own CUDA_VISIBLE_DEVICES
            return found[0], f"{why}; the one GPU visible to LOCAL_RANK {local_rank}"
        if not mine:
            raise DeviceError(f"LOCAL_RANK={local_rank} but this process sees only {_listing(found)}: "
                              "one process per GPU needs as many visible GPUs (CUDA_VISIBLE_DEVICES)")
        return mine[0], f"{why}; GPU {local_rank} = this process's LOCAL_RANK"
    if len(found) > 1:
        why += f"; {len(found)} {kind} devices, using the first"
    return found[0], why


def _cpu_auto(info: DeviceInfo) -> tuple[str, str]:
    from ftlab_local_peft.dtype_probe import choose_dtype

    dtype, reason = choose_dtype("cpu", "auto")
    return str(dtype).removeprefix("torch."), reason


def select_dtype(requested: str, info, cpu_policy: Optional[Callable[[DeviceInfo], tuple[str, str]]] = None
                 ) -> tuple[str, str]:
    """``(dtype name, reason)`` for ``backend.dtype=requested`` on ``info`` (a description).

    ``auto``: bf16 on CUDA with capability ≥ 8.0 and on a TPU; fp16 (with a grad scaler) on CUDA
    7.x; fp32 on older GPUs and on MPS; on a CPU, fp32 without native bf16 and otherwise what
    ``cpu_policy`` says (default: the timed probe of :mod:`~ftlab_local_peft.dtype_probe`). An explicit
    dtype is honoured; the reason says when the device lacks it natively."""
    info = DeviceInfo.of(info)
    req = str(requested).strip().lower()
    if req not in DTYPES:
        raise DeviceError(f"backend.dtype={requested!r}: use auto, fp32, bf16 or fp16")
    want = DTYPES[req]
    cap = info.capability
    if want != "auto":
        note = ""
        if want == "bfloat16" and info.type == "cuda" and cap and cap < BF16_CAPABILITY:
            note = f" (capability {cap[0]}.{cap[1]} < 8.0: bf16 is emulated and slow)"
        if want == "bfloat16" and info.type == "cpu" and info.bf16 is False:
            note = " (this cpu has no native bf16: emulated, about 2x slower than fp32)"
        return want, "requested" + note
    if info.type == "cuda":
        if cap is None:
            return "float32", "cuda device of unknown capability; float32"
        c = f"cuda capability {cap[0]}.{cap[1]}"
        if cap >= BF16_CAPABILITY:
            return "bfloat16", f"{c} ≥ 8.0 has native bf16"
        if cap >= FP16_CAPABILITY:
            return "float16", f"{c} < 8.0 has no bf16: fp16 autocast with a grad scaler"
        return "float32", f"{c} < 7.0 (no tensor cores): float32"
    if info.type == "xla":
        return "bfloat16", "TPU: bf16 is the native matmul type"
    if info.type == "mps":
        return "float32", "mps: no measured half-precision policy; float32"
    if info.type == "cpu":
        if info.bf16 is False:
            return "float32", "cpu has no avx512_bf16/amx_bf16 (bf16 would be emulated); float32"
        return (cpu_policy or _cpu_auto)(info)
    return "float32", f"no dtype policy for device type {info.type!r}; float32"


# ----------------------------------------------------------------------------- this machine
def _meminfo() -> tuple[Optional[int], Optional[int]]:
    vals = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            vals[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None, None
    return vals.get("MemTotal"), vals.get("MemAvailable")


def _nvidia_driver() -> Optional[str]:
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.splitlines()[0].strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import torch

        v = torch._C._cuda_getDriverVersion()  # e.g. 12040: the driver's CUDA API version
        return f"CUDA driver API {v // 1000}.{v % 1000 // 10}"
    except Exception:  # noqa: BLE001 - a private API; the tag is only informative
        return None


def _cuda_devices() -> list[DeviceInfo]:
    import torch

    if not torch.cuda.is_available():
        return []
    driver, out = _nvidia_driver(), []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        try:
            free, total = torch.cuda.mem_get_info(i)
        except RuntimeError:
            free, total = None, props.total_memory
        out.append(DeviceInfo("cuda", i, props.name, (props.major, props.minor), total, free, driver,
                              torch.version.cuda))
    return out


def _xla_devices() -> list[DeviceInfo]:
    """A TPU only when torch_xla imports *and* reports one (a CPU-only torch_xla is not a TPU)."""
    import importlib.util

    if importlib.util.find_spec("torch_xla") is None:
        return []
    try:
        import torch_xla.runtime as xr

        kind = xr.device_type()
    except Exception:  # noqa: BLE001 - torch_xla raises many kinds when no accelerator is attached
        return []
    if kind != "TPU":
        return []
    name = os.environ.get("TPU_ACCELERATOR_TYPE", "TPU")
    return [DeviceInfo("xla", 0, name)]


def _mps_devices() -> list[DeviceInfo]:
    import torch

    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return []
    total = free = None
    try:
        total = int(torch.mps.recommended_max_memory())
        free = total - int(torch.mps.current_allocated_memory())
    except (AttributeError, RuntimeError):
        pass
    return [DeviceInfo("mps", None, "Apple MPS", total_memory=total, free_memory=free)]


def cpu_device() -> DeviceInfo:
    from ftlab.machine import BF16_FLAGS, cpu_info

    model, flags = cpu_info()
    total, free = _meminfo()
    return DeviceInfo("cpu", None, model, total_memory=total, free_memory=free,
                      bf16=any(f in flags for f in BF16_FLAGS) if flags else None)


def describe_devices() -> list[DeviceInfo]:
    """This machine's devices in :data:`AUTO_ORDER`; the CPU always last."""
    return _cuda_devices() + _xla_devices() + _mps_devices() + [cpu_device()]


def free_memory(info: DeviceInfo) -> Optional[int]:
    """Bytes free on ``info``'s device now (None: unknown, e.g. a TPU)."""
    if info.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(info.index or 0)[0])
    if info.type == "cpu":
        return _meminfo()[1]
    if info.type == "mps":
        return (_mps_devices() or [info])[0].free_memory
    return None


def with_free(info: DeviceInfo, free: Optional[int]) -> DeviceInfo:
    return replace(info, free_memory=free)


def runtime_summary(tags: Mapping[str, str], prefix: str) -> str:
    """One printed line: device, its name, dtype and why."""
    return (f"[{prefix}] device {tags.get(prefix + '.device')} ({tags.get(prefix + '.device_name')}; "
            f"{tags.get(prefix + '.device_reason')}), dtype {tags.get(prefix + '.dtype')} "
            f"({tags.get(prefix + '.dtype_reason')})")
