"""benchmarks/run_all.py: RESULT lines to tables, targets judged, --quick, crashes and timeouts reported."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = mod
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("run_all", None)


def bench(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"bench_{name}.py"
    path.write_text("import sys\n" + body)
    return path


def test_result_lines_and_targets(run_all):
    rs = run_all.parse_results(["speed 3x faster", "RESULT a 0.85 ratio target=>=0.8",
                                "RESULT b 0.7 s target=<=0.5", "RESULT c 12 GFLOP/s",
                                "RESULT d 2 ratio target=about-2", "RESULT bad line"])
    assert [(r.name, r.value, r.unit, r.target) for r in rs] == [
        ("a", "0.85", "ratio", ">=0.8"), ("b", "0.7", "s", "<=0.5"), ("c", "12", "GFLOP/s", None),
        ("d", "2", "ratio", "about-2")]
    assert [r.passed() for r in rs] == [True, False, None, None]
    assert run_all.Result("x", "nan", "s", "<1").passed() is False
    assert run_all.Result("x", "n/a", "s", "<1").passed() is False


def test_discovery_finds_host_and_plugin_benchmarks(run_all):
    found = [str(p.relative_to(ROOT)) for p in run_all.discover()]
    assert "benchmarks/bench_machine.py" in found
    assert any(f.startswith("plugins/local_peft/benchmarks/bench_") for f in found)
    assert not any(Path(f).name == "run_all.py" or Path(f).name.startswith("_") for f in found)


def test_results_file_has_machine_tables_and_is_replaced(run_all, tmp_path):
    ok = bench(tmp_path, "ok", 'quick = "--quick" in sys.argv\n'
                               'print("human line", "quick" if quick else "full")\n'
                               'print("RESULT speedup 1.5 ratio target=>=1.2")\n'
                               'print("RESULT startup 0.7 s target=<=0.5")\n')
    crash = bench(tmp_path, "crash", 'print("RESULT partial 1 s")\nsys.exit(3)\n')
    out = tmp_path / "results.md"
    assert run_all.main([str(ok), str(crash), "--output", str(out)]) == 1
    text = out.read_text()
    for want in ("| CPU |", "| flags |", "| torch threads |", "| versions |", "| date |", "mode | full",
                 "| speedup | 1.5 | ratio | >=1.2 | pass |", "| startup | 0.7 | s | <=0.5 | **FAIL** |",
                 "failed (exit 3)", "| partial | 1 | s |  |  |", "human line full", "| ok | "):
        assert want in text, want
    assert "RESULT speedup" not in text  # RESULT lines become the table, not output

    assert run_all.main([str(ok), str(crash), "--quick", "--output", str(out)]) == 0
    text = out.read_text()
    assert "human line quick" in text and "skipped (no --quick)" in text and "human line full" not in text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_a_hanging_benchmark_is_killed_and_reported(run_all, tmp_path):
    hang = bench(tmp_path, "hang", 'import time\nprint("started", flush=True)\ntime.sleep(60)\n')
    run = run_all.run_one(hang, quick=False, timeout=1)
    assert run.status == "timed out after 1 s" and run.output == ["started"]
