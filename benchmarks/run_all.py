"""Run every benchmark and write benchmarks/results.md (``make bench``; ``make bench ARGS=--quick``).

Finds ``benchmarks/bench_*.py`` and ``plugins/*/benchmarks/bench_*.py``, runs each in its own process (output
shown live) and collects its ``RESULT <name> <value> <unit> [target=<text>]`` lines into one table per
benchmark, with pass/fail where the target is a comparison (``>=0.8``, ``<=1.5``). The file opens with the
machine (CPU model and flags, cores, torch threads, load), library versions and the date; re-running
replaces it. See benchmarks/README.md for the convention.

    python benchmarks/run_all.py [--quick] [--output FILE] [--timeout S] [BENCH.py ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import operator
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
RESULT = re.compile(r"^RESULT\s+(\S+)\s+(\S+)\s+(\S+)(?:\s+target=(\S+))?\s*$")
TARGET = re.compile(r"^(>=|<=|==|>|<)\s*([-+0-9.eE]+)$")
OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}
VERSIONS = ("ftlab", "ftlab-local-peft", "ftlab-bqml", "torch", "transformers", "peft", "accelerate",
            "hydra-core", "omegaconf", "mlflow", "numpy", "scikit-learn")
OUTPUT_LINES = 60


@dataclass
class Result:
    name: str
    value: str
    unit: str
    target: Optional[str] = None

    def passed(self) -> Optional[bool]:
        """True/False for a comparison target, None without one (or when it is not a comparison)."""
        m = TARGET.match(self.target or "")
        if not m:
            return None
        try:
            return bool(OPS[m.group(1)](float(self.value), float(m.group(2))))
        except ValueError:
            return False


@dataclass
class Run:
    path: Path
    status: str = "not run"
    wall_s: float = 0.0
    results: list[Result] = field(default_factory=list)
    output: list[str] = field(default_factory=list)


def parse_results(lines: list[str]) -> list[Result]:
    return [Result(*m.groups()) for m in map(RESULT.match, lines) if m]


def discover(root: Path = ROOT) -> list[Path]:
    return sorted(root.glob("benchmarks/bench_*.py")) + sorted(root.glob("plugins/*/benchmarks/bench_*.py"))


def supports_quick(path: Path) -> bool:
    """A benchmark offers ``--quick`` by defining that option (the literal string in its source)."""
    return '"--quick"' in path.read_text(encoding="utf-8", errors="replace")


def run_one(path: Path, quick: bool, timeout: Optional[float]) -> Run:
    run = Run(path)
    if quick and not supports_quick(path):
        run.status = "skipped (no --quick)"
        return run
    cmd = [sys.executable, str(path), *(["--quick"] if quick else [])]
    print(f"\n=== {rel(path)} {'--quick' if quick else ''}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    killed: list[bool] = []

    def kill() -> None:  # the benchmark's whole process group: it may run subprocesses of its own
        killed.append(True)
        os.killpg(proc.pid, signal.SIGKILL)

    watchdog = threading.Timer(timeout, kill) if timeout else None
    if watchdog:
        watchdog.start()
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            print("  " + line, end="", flush=True)
            run.output.append(line.rstrip("\n"))
        rc = proc.wait()
    except KeyboardInterrupt:  # its own session does not get the terminal's Ctrl-C
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    finally:
        if watchdog:
            watchdog.cancel()
    if killed:
        run.status = f"timed out after {timeout:.0f} s"
    else:
        run.status = "ok" if rc == 0 else f"failed (exit {rc})"
    run.wall_s = time.perf_counter() - t0
    run.results = parse_results(run.output)
    return run


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def machine() -> list[tuple[str, str]]:
    from ftlab.machine import PERF_FLAGS, cpu_info, perf_flags, usable_cores

    model, flags = cpu_info()
    rows = [("CPU", model),
            ("flags", ", ".join(perf_flags(flags)) or "none of " + ", ".join(PERF_FLAGS)),
            ("cores", f"{usable_cores()} usable of {os.cpu_count()}")]
    try:
        import torch

        rows.append(("torch threads", str(torch.get_num_threads())))
        if torch.cuda.is_available():
            rows.append(("GPU", torch.cuda.get_device_name(0)))
    except ImportError:
        rows.append(("torch threads", "torch not installed"))
    try:
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
        rows.append(("memory", f"{int(mem) / 2**20:.1f} GiB"))
    except (OSError, IndexError, ValueError):
        pass
    rows.append(("platform", f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"))
    return rows


def versions() -> str:
    out = []
    for dist in VERSIONS:
        try:
            out.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(out)


def git_sha() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{sha}{' (uncommitted changes)' if dirty else ''}" if sha else "?"


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def render(runs: list[Run], head: list[tuple[str, str]]) -> str:
    verdict = {True: "pass", False: "**FAIL**", None: ""}
    lines = ["# Benchmark results", "", "Written by `make bench` (benchmarks/run_all.py); re-running replaces it.",
             "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in head), "",
             "| benchmark | status | wall s | results | targets met |", "|---|---|---:|---:|---:|"]
    for r in runs:
        judged = [x.passed() for x in r.results if x.passed() is not None]
        met = f"{sum(judged)}/{len(judged)}" if judged else ""
        lines.append(f"| `{rel(r.path)}` | {r.status} | {r.wall_s:.1f} | {len(r.results)} | {met} |")
    for r in runs:
        lines += ["", f"## {rel(r.path)}", "", f"{r.status}, {r.wall_s:.1f} s."]
        if r.results:
            lines += ["", "| result | value | unit | target | |", "|---|---:|---|---|---|"]
            lines += [f"| {x.name} | {x.value} | {x.unit} | {x.target or ''} | {verdict[x.passed()]} |"
                      for x in r.results]
        elif r.output:
            lines += ["", "No `RESULT` lines (see benchmarks/README.md)."]
        text = [ln for ln in r.output if not RESULT.match(ln)]
        if text:
            shown = text[-OUTPUT_LINES:]
            cut = f" (last {OUTPUT_LINES} of {len(text)} lines)" if len(text) > OUTPUT_LINES else ""
            lines += ["", f"<details><summary>output{cut}</summary>", "", "```", *shown, "```", "", "</details>"]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("benchmarks", nargs="*", type=Path, help="run only these (default: discover all)")
    ap.add_argument("--quick", action="store_true", help="quick variants; benchmarks without --quick are skipped")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results.md")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per benchmark (default: none)")
    args = ap.parse_args(argv)
    paths = args.benchmarks or discover()
    started = dt.datetime.now().astimezone()
    head = [("date", started.strftime("%Y-%m-%d %H:%M %Z")), *machine(), ("load average at start", load()),
            ("versions", versions()), ("git", git_sha()), ("mode", "quick" if args.quick else "full")]
    runs = [run_one(p, args.quick, args.timeout) for p in paths]
    head.append(("load average at end", load()))
    write_atomic(args.output, render(runs, head))
    failed = [r for r in runs if r.status not in ("ok",) and not r.status.startswith("skipped")]
    misses = [x for r in runs for x in r.results if x.passed() is False]
    print(f"\nwrote {rel(args.output)}: {len(runs)} benchmarks, {len(failed)} failed, {len(misses)} targets missed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
