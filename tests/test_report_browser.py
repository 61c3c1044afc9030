"""The report as a user first sees it, laid out by headless Chromium (the browser the UI tests use):
results first, then the differences from the defaults, the full configuration last and collapsed."""

from __future__ import annotations

import json
import re

import pytest

from test_browser import CHROMIUM_FLAGS, chromium

pytestmark = pytest.mark.browser

PROBE = """<script>
window.addEventListener("load", () => {
  const top = el => el.getBoundingClientRect().top + window.scrollY;
  const details = document.querySelector("details.config");
  const row = details.querySelector("table tr");
  const out = {headline: top(document.querySelector("table.headline")),
               per_class: top([...document.querySelectorAll("h3")].find(h => h.textContent.startsWith("Per-class F1"))),
               matrix: top(document.querySelector("figure img")),
               changes: top(document.querySelector("h3[id^=changes-]")),
               config: top(details), open: details.open, row_visible: row.checkVisibility(),
               details_height: details.getBoundingClientRect().height,
               changes_rows: document.querySelectorAll("table.changes tr").length - 1};
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def test_the_report_leads_with_results_and_keeps_the_configuration_collapsed(run_experiment, tmp_path):
    import subprocess

    from ftlab.report import build_report

    run_experiment("train.learning_rate=0.002")
    html_path, _ = build_report("smoke", tmp_path / "out")
    page = tmp_path / "probe.html"
    page.write_text(html_path.read_text().replace("</body>", PROBE + "</body>"))
    res = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout)
    assert found, f"Chromium did not run the probe: {res.stderr[-2000:]}"
    got = json.loads(found.group(1).replace("&quot;", '"'))
    assert got["headline"] < got["per_class"] < got["matrix"] < got["changes"] < got["config"], got
    assert got["open"] is False and got["row_visible"] is False, "the full configuration is not collapsed"
    assert got["details_height"] < 40, got  # one summary line
    assert got["changes_rows"] >= 6, got  # +experiment=smoke and the override differ from the defaults
    shot = tmp_path / "report.png"
    subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}",
                    "--virtual-time-budget=10000", f"--screenshot={shot}", html_path.as_uri()],
                   capture_output=True, timeout=180)
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_the_differences_table_names_each_changed_key_with_its_default(run_experiment, tmp_path):
    from ftlab.report import build_report

    run_experiment("train.learning_rate=0.002")
    html_path, md_path = build_report("smoke", tmp_path / "out")
    md = md_path.read_text()
    changes = md[md.index("### Differences from the defaults"):md.index("### Provenance")]
    assert "| `train.learning_rate` | 0.002 | 0.0003 |" in changes
    assert "| `data.max_eval_rows` | 24 | None |" in changes and "| `experiment` | smoke | default |" in changes
    assert "`backend.junk_every`" not in changes  # the fake backend's default, unchanged
    assert md.index("### Results on `eval`") < md.index("### Differences") < md.index("<details>")
    assert "Compared with `ftlab backend=fake` (no experiment, no overrides)" in changes
