"""The quick commands stay quick: they import no model library, cloud SDK or MLflow (issue 8, start-up).

Each command runs as a user runs it, in a subprocess under ``python -X importtime``; the assertion is on the
imported modules, never on a time (benchmarks/bench_machine.py times them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FTLAB = str(Path(sys.executable).parent / "ftlab")
HEAVY = ("torch", "transformers", "peft", "google.cloud", "mlflow", "pandas", "scipy", "sklearn",
         "matplotlib")
COMMANDS = (["--help"], ["--cfg", "job", "+experiment=mtsamples17_lora_local"], ["plugins"])


def imported_modules(importtime_stderr: str) -> set[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    return {line.rsplit("|", 1)[1].strip() for line in importtime_stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules))


def test_importtime_parsing_finds_nested_heavy_modules():
    text = ("import time: self [us] | cumulative | imported package\n"
            "import time:       191 |     115363 | hydra\n"
            "import time:        20 |         30 |     google.cloud.bigquery\n"
            "import time:        20 |         30 |   torchvision\n")
    mods = imported_modules(text)
    assert mods == {"imported package", "hydra", "google.cloud.bigquery", "torchvision"}
    assert heavy_in(mods) == ["google.cloud"]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_quick_command_imports_nothing_heavy(args):
    res = subprocess.run([sys.executable, "-X", "importtime", FTLAB, *args], capture_output=True,
                         text=True, timeout=120, cwd=ROOT, env=os.environ.copy())
    assert res.returncode == 0, res.stderr[-3000:]
    mods = imported_modules(res.stderr)
    assert "ftlab.cli" in mods, "no importtime output: is -X importtime still honoured?"
    assert heavy_in(mods) == [], f"`ftlab {' '.join(args)}` imports {heavy_in(mods)}; find who with -X importtime"
