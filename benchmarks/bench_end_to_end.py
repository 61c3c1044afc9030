"""The default experiment end to end, as ``make run`` runs it: wall time, peak memory, MLflow's share.

Issue 8's targets: the default experiment <= 15 min on the machine at hand, model load included (target 5),
and MLflow logging <= 2 % of a run's wall time (target 6, with peak memory reported). Runs ``ftlab
+experiment=mtsamples17_lora_local`` (every stage, the embedded model, all 519 + 260 rows) in a fresh
process, tracking to a new sqlite store in a temporary folder; the store is created first and timed apart
(MLflow's schema migrations are a one-off per store, not per run). The tracking share is the run's own
measurement, ``time/tracking_s`` (wall seconds inside the tracker: MLflow's import, the run's creation,
every call, and the run folder's mirror of them) over ``time/run_wall_s``. Peak memory is the child's
maximum resident set. Also prints the run's headline numbers, so a slower machine's run can be checked
for the same result.

``--quick``: the tiny random model on 16 + 8 rows, run twice, tracking on and off, for the wall-clock
difference as a cross-check of the tracker's own timing (a short run is a pessimistic case: tracking's
cost is mostly per run, compute grows with the rows).

    python benchmarks/bench_end_to_end.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["+experiment=mtsamples17_lora_local"]
QUICK = [*DEFAULT, "model=tiny_random", "data.max_train_rows=16", "data.max_eval_rows=8",
         "backend.document_tokens=64"]


def ftlab_cmd() -> str:
    exe = Path(sys.executable).parent / "ftlab"
    found = str(exe) if exe.exists() else shutil.which("ftlab")
    if found is None:
        raise SystemExit("the ftlab command is not installed (make venv)")
    return found


def run_once(args: list[str], run_dir: Path) -> tuple[float, float, dict[str, float]]:
    """(wall s, peak RSS GiB, last value of each metric) of one ``ftlab`` run in a fresh process."""
    t0 = time.perf_counter()
    res = subprocess.run([ftlab_cmd(), *args, f"hydra.run.dir={run_dir}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=7200, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2 ** 20  # KiB on Linux
    if res.returncode != 0:
        raise SystemExit(f"ftlab {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    print(res.stdout[-2500:])
    last: dict[str, float] = {}
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            last.update({k: v for k, v in json.loads(line).items() if k not in ("step", "time")})
    return wall, peak, last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the tiny random model, tracking on and off")
    args = ap.parse_args()
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    print(f"machine: {cores} cpus, load average {load:.1f}")
    common = [*(QUICK if args.quick else DEFAULT), "backend.progress=false"]
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "mlflow.db"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sys\nfrom mlflow.tracking import MlflowClient\n"
                        "MlflowClient(tracking_uri=sys.argv[1]).search_experiments()", f"sqlite:///{store}"],
                       check=True, capture_output=True, timeout=900)
        create_s = time.perf_counter() - t0
        off_wall = None
        if args.quick:
            off_wall, _, _ = run_once([*common, "tracking.enabled=false"], Path(tmp) / "off")
        wall, peak, m = run_once([*common, f"tracking.uri=sqlite:///{store}"], Path(tmp) / "on")
    if "time/tracking_s" not in m:
        raise SystemExit("the run did not report time/tracking_s")
    share = m["time/tracking_s"] / m["time/run_wall_s"]
    print(f"ftlab {' '.join(common)}")
    print(f"new sqlite store (one-off, MLflow's migrations): {create_s:.1f} s")
    print(f"run: {wall:.1f} s wall ({wall / 60:.1f} min) in a fresh process, peak RSS {peak:.2f} GiB; "
          f"tracking {m['time/tracking_s']:.2f} s of the run's {m['time/run_wall_s']:.1f} s = {100 * share:.2f} %")
    for stage in ("base", "tuned"):
        key = f"eval/{stage}/eval"
        if f"{key}/strict/macro_f1" in m:
            print(f"  {stage}: macro-F1 strict {m[f'{key}/strict/macro_f1']:.3f}, "
                  f"lenient {m.get(f'{key}/lenient/macro_f1', float('nan')):.3f}")
    if "compare/eval/macro_f1_delta" in m:
        print(f"  tuned - base macro-F1 {m['compare/eval/macro_f1_delta']:+.3f}, 95% paired bootstrap CI "
              f"[{m['compare/eval/macro_f1_delta_ci_low']:+.3f}, {m['compare/eval/macro_f1_delta_ci_high']:+.3f}]"
              f", McNemar p {m.get('compare/eval/mcnemar_p', float('nan')):.2g}")
    if off_wall is not None:
        print(f"tracking off: {off_wall:.1f} s wall; on - off = {wall - off_wall:+.1f} s "
              f"({100 * (wall - off_wall) / off_wall:+.1f} %, machine noise included)")
        print(f"RESULT tracking_on_vs_off_wall {wall / off_wall:.3f} ratio")
    suffix = "_quick" if args.quick else ""
    print(f"RESULT run_wall_s{suffix} {wall:.1f} s" + ("" if args.quick else " target=<=900"))
    print(f"RESULT run_peak_rss_gib{suffix} {peak:.2f} GiB")
    print(f"RESULT tracking_share{suffix} {share:.4f} fraction" + ("" if args.quick else " target=<=0.02"))
    print(f"RESULT tracking_s{suffix} {m['time/tracking_s']:.2f} s")
    print(f"RESULT tracking_store_create_s {create_s:.2f} s")
    if not args.quick and "eval/tuned/eval/strict/macro_f1" in m:
        print(f"RESULT tuned_macro_f1_strict {m['eval/tuned/eval/strict/macro_f1']:.4f} macro_f1")
        print(f"RESULT tuned_macro_f1_lenient {m['eval/tuned/eval/lenient/macro_f1']:.4f} macro_f1")
    if not args.quick and "compare/eval/macro_f1_delta_ci_low" in m:
        print(f"RESULT macro_f1_delta_ci_low {m['compare/eval/macro_f1_delta_ci_low']:.4f} macro_f1 target=>0")


if __name__ == "__main__":
    main()
