"""Model load (issue 8, target 5): SmolLM2-135M GGUF load without and with ftlab's dequantised-weight cache.

Each load runs in its own subprocess (``python bench_load.py --child``), so the imports are counted the
same way every time and nothing stays warm in the process; the wall time is taken from outside, from
process start to a loaded tokenizer + model (what ``make run`` pays before its first stage; the child
reports the moment on the shared wall clock, so the interpreter's exit is not counted), and the
child's CPU seconds beside it (exit included) (on a busy machine the wall time mostly measures the neighbours). Uncached:
``FTLAB_CACHE_DIR`` is an empty temporary folder, so the GGUF is dequantised and the cache written; cached:
a second load from the same folder. The child also reports its import time and the load alone. The
backend is built with ``backend.dtype=float32`` so that no dtype probe runs inside the timed load. Needs:
the real model installed; the page cache is warm after the first run (the GGUF file is read either way).

    python plugins/local_peft/benchmarks/bench_load.py            # 2 uncached + 3 cached loads, medians
    python plugins/local_peft/benchmarks/bench_load.py --quick    # 1 + 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def child() -> None:
    """Load tokenizer + model as a run does (LocalPeftBackend._ensure_loaded); print one JSON line."""
    t0 = time.perf_counter()
    from _common import context, load_examples, make_cfg
    from ftlab_local_peft.backend import LocalPeftBackend

    _, labels = load_examples(1)
    cfg = make_cfg(True, labels, backend={"dtype": "float32", "progress": False})
    b = LocalPeftBackend(cfg, context())
    t1 = time.perf_counter()
    b._ensure_loaded()
    t2 = time.perf_counter()
    print("CHILD " + json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "loaded_at": time.time()}),
          flush=True)


def one_load(cache_dir: str) -> dict:
    """One load in a fresh interpreter: wall and CPU seconds (CPU tells a busy machine from a slow load)."""
    env = {**os.environ, "FTLAB_CACHE_DIR": cache_dir}
    r0, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    out = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True)
    r1, ended = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if out.returncode != 0:
        raise SystemExit(f"load failed ({out.returncode}):\n{out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("CHILD "))
    info = json.loads(line[len("CHILD "):])
    # process start to a loaded model (the child's clock, same machine): the interpreter's exit, which
    # a run pays at its end and not before its first stage, is left out
    return {"wall_s": info.pop("loaded_at") - started, "process_s": ended - started, "cpu_s": cpu, **info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one uncached and one cached load")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child()
    from _common import machine_line, result

    n_uncached, n_cached = (1, 1) if args.quick else (2, 3)
    print(machine_line())
    uncached, cached, size = [], [], 0
    for i in range(n_uncached):
        folder = tempfile.mkdtemp(prefix="ftlab-bench-cache-")
        try:
            uncached.append(one_load(folder))
            if i == n_uncached - 1:  # the cached loads read the folder the last uncached load wrote
                size = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
                for _ in range(n_cached):
                    cached.append(one_load(folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    for name, runs in (("uncached", uncached), ("cached", cached)):
        print(f"{name:8s} wall " + ", ".join(f"{r['wall_s']:.1f}" for r in runs) + " s (cpu "
              + ", ".join(f"{r['cpu_s']:.1f}" for r in runs) + " s; imports "
              + ", ".join(f"{r['import_s']:.1f}" for r in runs) + " s, load alone "
              + ", ".join(f"{r['load_s']:.1f}" for r in runs) + " s; process to its exit "
              + ", ".join(f"{r['process_s']:.1f}" for r in runs) + " s)")
    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in (("u", uncached), ("c", cached))}
    print(f"cache folder {size / 2**20:.0f} MiB; cached load {med['u'] / med['c']:.1f}x faster (median wall)")
    result("model_load_uncached", med["u"], "s")
    result("model_load_cached", med["c"], "s", "<=5")
    result("model_load_cached_speedup", med["u"] / med["c"], "ratio")
    result("model_load_cached_process", statistics.median(r["process_s"] for r in cached), "s")
    result("model_load_cached_load_only", statistics.median(r["load_s"] for r in cached), "s")
    result("model_load_uncached_cpu", statistics.median(r["cpu_s"] for r in uncached), "s")
    result("model_load_cached_cpu", statistics.median(r["cpu_s"] for r in cached), "s")


if __name__ == "__main__":
    main()
