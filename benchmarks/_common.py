"""What the benchmark scripts share: the RESULT line run_all.py collects, the machine line, and one
ftlab run in a fresh process (the results tables).

Not a benchmark itself (run_all.py runs ``bench_*.py`` only); each script runs from this folder, so
``from _common import result, machine_line`` finds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def result(name: str, value: float, unit: str, target: str = "") -> None:
    """Print one ``RESULT <name> <value> <unit> [target=…]`` line (benchmarks/README.md)."""
    print(f"RESULT {name} {value:.4g} {unit}" + (f" target={target}" if target else ""), flush=True)


def machine_line() -> str:
    """CPU model and speed flags, cores, GPU if any, torch and its threads, load average."""
    import torch

    from ftlab.machine import cpu_info, perf_flags

    model, flags = cpu_info()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"machine: {model} [{','.join(perf_flags(flags)) or '-'}], {os.cpu_count()} cpus, {dev}, "
            f"torch {torch.__version__} on {torch.get_num_threads()} threads, load average {load}")


def run_ftlab(experiment: str, out: Path, overrides: list[str]) -> float:
    """``ftlab +experiment=<experiment> hydra.run.dir=<out> <overrides>`` from the checkout, offline;
    its wall time in seconds (a failed run raises)."""
    exe = Path(sys.executable).with_name("ftlab")
    cmd = [str(exe), f"+experiment={experiment}", f"hydra.run.dir={out}", *overrides]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - t0
