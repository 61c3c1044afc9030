"""Project rules as tests: module size budget, lazy heavy imports, README commands exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for base in ("src", "plugins") for p in (ROOT / base).rglob("*.py")
                 if ".venv" not in p.parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_size_budget(path):
    n = len(path.read_text().splitlines())
    assert n <= 400, f"{path.relative_to(ROOT)} has {n} lines; split it by responsibility"


def test_plugin_discovery_and_entry_modules_do_not_import_heavy_libraries():
    code = ("import sys\n"
            "from ftlab.plugins import Plugins\n"
            "from ftlab.config.compose import compose\n"
            "p = Plugins(load_entry_points=True); p.backends()\n"
            "compose(['+experiment=smoke'], p)\n"
            "heavy = ('torch', 'transformers', 'peft', 'google.cloud.bigquery', 'pandas', 'mlflow')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", f"imported at discovery: {res.stdout}; find it with python -X importtime"


def test_readme_has_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
