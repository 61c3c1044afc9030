"""How fast is this machine: square matmul GFLOP/s in fp32 and bf16, the dtype probe, and CLI start-up times.

Read another machine's benchmark numbers against these: a machine with half the fp32 GFLOP/s should train
about half as fast, and one where bf16 is not faster than fp32 (no AVX-512 BF16/AMX) gets fp32 from
``backend.dtype=auto``. Start-up targets (issue 8): ``ftlab --help`` <= 0.5 s, ``ftlab --cfg job
+experiment=mtsamples17_lora_local`` <= 1.5 s, ``ftlab plugins`` <= 1 s (median of 5 runs each, interleaved;
the child's CPU time beside it, which a busy machine inflates less).

    python benchmarks/bench_machine.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = {"cli_help": (["--help"], 0.5),
       "cli_cfg_job": (["--cfg", "job", "+experiment=mtsamples17_lora_local"], 1.5),
       "cli_plugins": (["plugins"], 1.0)}


def matmul_gflops(dtype, n: int, reps: int) -> float:
    """GFLOP/s of an n x n @ n x n matmul on torch's current threads (median of ``reps`` after a warm-up)."""
    import torch

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
    times = []
    with torch.inference_mode():
        torch.mm(a, b)
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def startup_times(runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds of each CLI command as a user runs it, rounds interleaved so load hits all alike.

    CPU time (user + system of the child) is less inflated than wall time on a busy machine.
    """
    from bench_end_to_end import ftlab_cmd  # the same lookup of the installed command

    ftlab = ftlab_cmd()
    cmds = {"python_startup": [sys.executable, "-c", "pass"], **{k: [ftlab, *a] for k, (a, _) in CLI.items()}}
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in cmds}
    for _ in range(runs):
        for key, cmd in cmds.items():
            r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
            wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
            times[key][0].append(wall)
            times[key][1].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
            if res.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (3 instead of 5)")
    ap.add_argument("-n", type=int, default=2048, help="matmul size")
    args = ap.parse_args()
    reps = 3 if args.quick else 5

    import torch

    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.2f} on {cores} cores")
    if load > cores / 2:
        print("WARNING: the machine is busy; every figure below is slower than this machine can do")
    fp32 = matmul_gflops(torch.float32, args.n, reps)
    bf16 = matmul_gflops(torch.bfloat16, args.n, reps)
    print(f"matmul {args.n}x{args.n}: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s ({bf16 / fp32:.2f}x)")
    print(f"RESULT matmul_fp32 {fp32:.1f} GFLOP/s")
    print(f"RESULT matmul_bf16 {bf16:.1f} GFLOP/s")
    print(f"RESULT matmul_bf16_vs_fp32 {bf16 / fp32:.2f} ratio")

    try:
        from ftlab_local_peft import dtype_probe
    except ImportError:
        print("dtype probe: ftlab-local-peft not installed")
    else:
        r = dtype_probe.probe()
        with tempfile.TemporaryDirectory() as tmp:  # a fresh decision, not this machine's cached one
            dtype, reason = dtype_probe.choose_dtype("cpu", cache_dir=tmp, run_probe=lambda: r)
        print(f"dtype probe {dtype_probe.PROBE_SHAPE}: fp32 {r.fp32_s * 1e3:.2f} ms, bf16 {r.bf16_s * 1e3:.2f} ms "
              f"({r.speedup:.2f}x); backend.dtype=auto on CPU -> {dtype}: {reason}")
        print(f"RESULT dtype_probe_bf16_vs_fp32 {r.speedup:.2f} ratio")

    times = startup_times(reps)
    for key, (wall, cpu) in times.items():
        med = statistics.median(wall)
        args_, target = CLI.get(key, (["python -c pass"], None))
        print(f"{key:15s} median {med:.3f} s wall (min {min(wall):.3f}, max {max(wall):.3f}), "
              f"{statistics.median(cpu):.3f} s CPU, {len(wall)} runs: {' '.join(args_)}")
        print(f"RESULT {key} {med:.3f} s" + (f" target=<={target}" if target is not None else ""))
        print(f"RESULT {key}_cpu {statistics.median(cpu):.3f} s")

if __name__ == "__main__":
    main()
