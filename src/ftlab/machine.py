"""Which CPU this is: model name and the instruction-set flags that decide kernel speed (stdlib only).

Machines of one kind differ (one had AVX-512 BF16, the next AVX2 only, and bf16 was 2x slower there), so
benchmarks state these flags and the local backend's dtype probe keys its cache on them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

PERF_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
"""Flags that change which matmul kernels torch picks."""
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""Native bf16 arithmetic; without one of these, bf16 is emulated and slower than fp32."""


def cpu_info(text: Optional[str] = None) -> tuple[str, frozenset[str]]:
    """``(model name, flags)`` from /proc/cpuinfo text (read when not given; empty where unavailable)."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model or "unknown cpu", flags


def perf_flags(flags: frozenset[str]) -> list[str]:
    """The :data:`PERF_FLAGS` present, in a fixed order."""
    return [f for f in PERF_FLAGS if f in flags]


def usable_cores() -> int:
    """Cores this process may run on (affinity), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
