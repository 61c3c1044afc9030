"""The newcomer path: ``make test`` checks the README's prerequisites before installing anything, and
CI (``.ci/run``) does nothing the README's command does not, beyond installing those prerequisites."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _make_test(tmp_path, **env):
    if shutil.which("make") is None:
        pytest.fail("make is a documented prerequisite (README) and is missing", pytrace=False)
    venv = tmp_path / "venv"
    proc = subprocess.run(["make", "-C", str(ROOT), "test", f"VENV={venv}"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})
    return proc, venv


def test_make_test_without_chromium_stops_first_with_the_install_command(tmp_path):
    proc, venv = _make_test(tmp_path, FTLAB_CHROMIUM=str(tmp_path / "no-chromium"))
    assert proc.returncode != 0
    assert "make test: chromium is missing" in proc.stdout + proc.stderr
    assert "sudo apt-get install -y chromium" in proc.stdout + proc.stderr
    assert not venv.exists(), "make test installed things before checking the prerequisites"


def test_make_test_with_an_old_python_stops_first(tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    proc, venv = _make_test(tmp_path, PYTHON=str(fake))
    assert proc.returncode != 0 and "install Python 3.11+" in proc.stdout + proc.stderr
    assert not venv.exists()


def test_readme_prerequisites_name_what_make_test_checks():
    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11+" in readme and "sudo apt-get install -y chromium" in readme
    make = (ROOT / "Makefile").read_text()
    assert "sudo apt-get install -y chromium" in make and "(3, 11)" in make


def test_ci_runs_the_readme_command_and_only_installs_prerequisites_besides():
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
             if ln.strip() and not ln.strip().startswith("#")]
    assert lines[-1] == "make test"
    allowed = re.compile(r"^(set -euo pipefail|cd .*|if .*chromium.*; then|apt-get update -qq|"
                         r"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null|fi)$")
    extra = [ln for ln in lines[:-1] if not allowed.match(ln)]
    assert not extra, f".ci/run does more than install the prerequisites and run make test: {extra}"


def test_the_readme_test_command_runs_the_real_model_test():
    recipe = (ROOT / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "--run-slow" in recipe, "make test must include the slow tier (the real embedded model)"
    gguf = (ROOT / "plugins" / "local_peft" / "tests" / "test_local_peft_gguf.py").read_text()
    assert "pytest.mark.slow" in gguf
