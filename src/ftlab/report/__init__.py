"""``ftlab report``: one self-contained HTML page and a Markdown file for a run or an experiment.

``build_report(ref)`` finds the run(s) (:mod:`ftlab.runs`), collects rows (:mod:`.collect`) and
renders them (:mod:`.html`, :mod:`.markdown`). Nothing here imports a model library.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from ftlab.paths import atomic_write_text
from ftlab.runs import RUN_ID, find_runs
from ftlab.tracking.redact import redact_uri


def _file_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "report"


def build_report(ref: str, out_dir: Path, uri: Optional[str] = None,
                 max_runs: int = 20) -> tuple[Path, Path]:
    """Write ``<stem>.html`` and ``<stem>.md`` (+ ``<stem>_files/`` charts) under ``out_dir``."""
    from ftlab.report.collect import collect
    from ftlab.report.html import render_html
    from ftlab.report.markdown import render_markdown

    runs = find_runs(ref, uri, max_runs=max_runs)
    try:
        defaults: dict = {}  # backend → default params, composed once per report
        views = [collect(r, defaults) for r in runs]
        single = RUN_ID.match(ref) or (Path(ref).expanduser() / "config.yaml").is_file()
        if single:
            run = runs[0]
            title = f"ftlab report: {run.experiment_name} / {run.label}"
            stem = _file_stem(f"{run.experiment_name}-{run.run_id[:8]}")
        else:
            title = f"ftlab report: experiment {runs[0].experiment_name} ({len(runs)} runs)"
            stem = _file_stem(f"{runs[0].experiment_name}")
        generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        out_dir.mkdir(parents=True, exist_ok=True)
        html_path, md_path = out_dir / f"{stem}.html", out_dir / f"{stem}.md"
        uri_shown = redact_uri(runs[0].tracking_uri)
        atomic_write_text(html_path, render_html(views, title, generated, uri_shown))
        atomic_write_text(md_path, render_markdown(views, title, generated, uri_shown,
                                                   out_dir / f"{stem}_files", f"{stem}_files"))
    finally:
        for r in runs:
            r.cleanup()
    return html_path, md_path
