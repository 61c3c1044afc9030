"""Choose the compute dtype at run time: bf16 only where it is measurably faster on this machine.

Machines of one kind differ: with native bf16 instructions (AVX-512 BF16, AMX) a bf16 matmul ran 2.3x
fp32; with AVX2 only, bf16 autocast ran 2x *slower*. So on CPU ``auto`` reads the CPU flags, and only when
bf16 instructions exist times a short fp32-vs-bf16 probe of transformer-like shape. The decision is cached
per machine (CPU model, flags, torch version, thread count) in ``$FTLAB_CACHE_DIR/dtype_probe.json``
(default ``~/.cache/ftlab``), so later runs pay nothing.

    dtype, reason = choose_dtype(device, cfg.dtype)   # reason goes to the manifest / MLflow
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from ftlab.machine import BF16_FLAGS, cpu_info, perf_flags

MIN_SPEEDUP = 1.2
"""bf16 must be at least this much faster than fp32 in the probe to be chosen."""
PROBE_SHAPE = (512, 576, 1536)
"""tokens x hidden x MLP width: SmolLM2-135M's MLP on a 512-token batch."""
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
CACHE_FILE = "dtype_probe.json"


@dataclass(frozen=True)
class ProbeResult:
    fp32_s: float
    """Median seconds of one up + down projection in fp32."""
    bf16_s: float
    """The same in bf16."""

    @property
    def speedup(self) -> float:
        return self.fp32_s / self.bf16_s


def cache_key(model: str, flags: frozenset[str], torch_version: str, threads: int) -> str:
    """One machine + software setting: CPU model, the flags that matter (ftlab.machine.PERF_FLAGS), torch
    version, threads."""
    present = ",".join(perf_flags(flags)) or "-"
    return f"{model}|{present}|torch {torch_version}|{threads} threads"


def cache_path(cache_dir: Optional[os.PathLike] = None) -> Path:
    base = cache_dir or os.environ.get("FTLAB_CACHE_DIR") or Path.home() / ".cache" / "ftlab"
    return Path(base) / CACHE_FILE


def probe(budget_s: float = 1.0) -> ProbeResult:
    """Time fp32 vs bf16 linear layers of :data:`PROBE_SHAPE`, both directions, on torch's threads.

    Up projection [n, h] x [h, w] and down projection [n, w] x [w, h], alternating the dtypes so that a
    busy neighbour slows both alike; median per dtype; stops after ``budget_s`` (at least 3 rounds).
    """
    n, h, w = PROBE_SHAPE
    g = torch.Generator().manual_seed(0)
    base = [torch.randn(n, h, generator=g), torch.randn(w, h, generator=g) / h ** 0.5,
            torch.randn(h, w, generator=g) / w ** 0.5]
    per = {dt: [t.to(dt) for t in base] for dt in (torch.float32, torch.bfloat16)}
    times: dict[torch.dtype, list[float]] = {dt: [] for dt in per}

    def once(x, up, down) -> float:
        t0 = time.perf_counter()
        torch.nn.functional.linear(torch.nn.functional.linear(x, up), down)
        return time.perf_counter() - t0

    start = time.perf_counter()
    with torch.inference_mode():
        for args in per.values():  # warm-up: kernel selection, allocator
            once(*args)
        while True:
            for dt, args in per.items():
                times[dt].append(once(*args))
            rounds = len(times[torch.float32])
            if rounds >= 3 and (time.perf_counter() - start > budget_s or rounds >= 25):
                break
    return ProbeResult(statistics.median(times[torch.float32]), statistics.median(times[torch.bfloat16]))


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, key: str, entry: dict) -> None:
    """Add ``entry`` under ``key``, atomically (temporary file + rename); a failure only loses the cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache(path)
        data[key] = entry
        fd, tmp = tempfile.mkstemp(prefix=".dtype_probe.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


def _cpu_choice(cpuinfo: Optional[str], cache_dir, run_probe: Callable[[], ProbeResult]
                ) -> tuple[torch.dtype, str]:
    model, flags = cpu_info(cpuinfo)
    native = [f for f in BF16_FLAGS if f in flags]
    if not native:
        return torch.float32, (f"cpu has none of {'/'.join(BF16_FLAGS)} (bf16 would be emulated); "
                               "float32 without probing")
    key = cache_key(model, flags, torch.__version__, torch.get_num_threads())
    path = cache_path(cache_dir)
    entry = _read_cache(path).get(key)
    if isinstance(entry, dict) and {"speedup", "date"} <= entry.keys():
        how = f"cached {entry['date']}"
    else:
        r = run_probe()
        entry = {"speedup": round(r.speedup, 3), "fp32_ms": round(r.fp32_s * 1e3, 3),
                 "bf16_ms": round(r.bf16_s * 1e3, 3), "date": _dt.date.today().isoformat()}
        _write_cache(path, key, entry)
        how = "measured now"
    speedup = float(entry["speedup"])
    has = f"cpu has {'+'.join(native)}"
    if speedup >= MIN_SPEEDUP:
        return torch.bfloat16, f"{has}; probe bf16 {speedup:.2f}x faster than fp32 ({how})"
    return torch.float32, f"{has}; probe bf16 only {speedup:.2f}x fp32, below {MIN_SPEEDUP}x ({how}); float32"


def choose_dtype(device, requested: str = "auto", *, cpuinfo: Optional[str] = None,
                 cache_dir: Optional[os.PathLike] = None,
                 run_probe: Optional[Callable[[], ProbeResult]] = None) -> tuple[torch.dtype, str]:
    """``(dtype, reason)`` for ``device`` (``torch.device`` or str).

    ``requested``: ``auto``, or an explicit ``float32``/``bfloat16``/``float16`` (also ``fp32``/``bf16``/
    ``fp16``), honoured as given. ``auto`` on CPU: see the module docstring; on another device the
    policy of :func:`ftlab_local_peft.hardware.select_dtype`. ``cpuinfo`` (/proc/cpuinfo text), ``cache_dir`` and ``run_probe`` are for tests.
    """
    req = str(requested).strip().lower()
    if req in DTYPES:
        return DTYPES[req], "requested"
    if req != "auto":
        raise ValueError(f"unknown dtype {requested!r}: use auto, float32, bfloat16 or float16")
    kind = torch.device(device).type
    if kind == "cpu":
        return _cpu_choice(cpuinfo, cache_dir, run_probe or probe)
    from ftlab_local_peft.hardware import describe_devices, select_device, select_dtype  # one policy

    name, reason = select_dtype("auto", select_device(str(device), describe_devices())[0])
    return DTYPES[name], reason
