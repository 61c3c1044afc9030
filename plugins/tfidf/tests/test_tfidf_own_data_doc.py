"""docs/own_data.md as a user runs it: every ``bash`` block of the page, in order, in a fresh home folder
outside the checkout (a CSV copied there, ``ftlab init``, ``ftlab --config-dir`` runs, ``ftlab report``).

Two changes to the commands, both appended to the ``ftlab --config-dir`` lines: each run's folder goes
under the test's temporary folder (``hydra.run.dir=...``), and the LLM run of section 4 uses the tiny
random model on a few rows (the real one takes minutes; its numbers are in the page's table). The
outputs the page shows (the CSV's first lines, the label counts, the row counts, the TF-IDF run's table)
are checked against what the commands print.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "own_data.md"
SMALL_LLM = "model=tiny_random data.max_train_rows=24 data.max_eval_rows=12 prompt.max_input_tokens=32"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```$", DOC.read_text(), re.M | re.S)


def test_the_own_data_walkthrough_runs_as_written(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", MLFLOW_DISABLE_TELEMETRY="true",
               DO_NOT_TRACK="true", HF_HUB_OFFLINE="1", FTLAB_HOME=str(ROOT), MPLCONFIGDIR=str(tmp_path / "mpl"))
    outputs = []
    for n, block in enumerate(blocks("bash")):
        lines = []
        for line in block.splitlines():
            if line.startswith("ftlab --config-dir"):
                line += f" hydra.run.dir={tmp_path / 'runs' / str(n)}"
                if "notes_lora" in line:
                    line += f" {SMALL_LLM}"
            lines.append(line)
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=1800)
        assert res.returncode == 0, f"block {n}:\n{block}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        outputs.append(res.stdout + res.stderr)
    shown = blocks("text")
    assert outputs[0].strip() == shown[0].strip()  # head -3 of the CSV
    init = outputs[1]
    for line in shown[1].splitlines():
        if re.match(r"^\s+\d+  \S", line) or "train /" in line:
            assert line in init, line  # the label counts and the row counts the page shows
    assert "eval_fraction: 0.2" in outputs[2] and "labels: auto" in outputs[2]
    assert "fallback (tfidf)" in outputs[3]
    for line in shown[3].splitlines()[1:9]:  # the rows the page shows (tfidf is deterministic)
        assert line in outputs[3], line
    split = tmp_path / "runs" / "3" / "data" / "split.json"
    assert split.is_file() and (tmp_path / "runs" / "4" / "train").is_dir()
    html = (home / "mytask" / "reports" / "notes.html").read_text()
    assert "Runs side by side (2, newest first)" in html and "Differences from the defaults" in html
    assert html.index("Results on <code>eval</code>") < html.index("Differences from the defaults") \
        < html.index('<details class="config"')
    assert "<code>train.method</code></th><td>lora_cls</td>" in html
