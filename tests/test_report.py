"""``ftlab report``: one run, an experiment side by side, artifacts without the run folder, escaping."""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest

from conftest import mlflow_client


def _run_id(experiment="smoke"):
    client = mlflow_client()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    return runs[0]


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_report_for_one_run(run_experiment, tmp_path):
    from ftlab.cli import main

    run_experiment()
    run = _run_id()
    m = run.data.metrics
    out = tmp_path / "reports"
    assert main(["report", run.info.run_id, "--output", str(out)]) == 0
    html = next(out.glob("*.html")).read_text()
    md = next(out.glob("*.md")).read_text()
    # self-contained: every image is embedded, no external resources
    imgs = _images(html)
    assert len(imgs) == 4  # 2 confusion matrices, per-class F1 bars, training loss
    assert all(b.startswith(b"\x89PNG") for b in imgs)
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    for text in ("Cardiovascular / Pulmonary", "Consult - History and Phy.", "lenient", "strict",
                 "McNemar", "paired bootstrap CI", "unparseable rate", "micro-F1", "accuracy"):
        assert text in html and text in md, text
    # the numbers are MLflow's, formatted
    for key in ("eval/base/eval/strict/macro_f1", "eval/tuned/eval/lenient/macro_f1",
                "eval/base/eval/lenient/micro_f1", "eval/tuned/eval/strict/unparseable_rate"):
        assert f"{m[key]:.3f}" in html
    ci = (f"{m['compare/eval/macro_f1_delta']:+.3f} [{m['compare/eval/macro_f1_delta_ci_low']:+.3f}, "
          f"{m['compare/eval/macro_f1_delta_ci_high']:+.3f}]")
    assert ci in html and ci in md
    assert f"{m['compare/eval/mcnemar_p']:.3g}" in html
    # per-class row: label, support, base F1, tuned F1, delta
    b = m["eval/base/eval/per_class/consult_history_and_phy/f1"]
    t = m["eval/tuned/eval/per_class/consult_history_and_phy/f1"]
    assert f"| Consult - History and Phy. | 9 | {b:.3f} | {t:.3f} | {t - b:+.3f} |" in md
    # config summary and provenance
    assert "backend.name" in html and "tiny_random" in html and "train.lora.r" in html
    assert run.data.tags["mlflow.source.git.commit"] in html
    assert run.data.tags["ftlab.prompt_sha256"] in html and run.data.tags["ftlab.label_set_sha256"] in md
    assert "version mlflow" in html
    # Markdown charts are files next to it
    files = [p.name for p in out.glob("*_files/*.png")]
    assert len(files) == 4 and all(f"({p.parent.name}/{p.name})" in md for p in out.glob("*_files/*.png"))


def test_report_reads_artifacts_when_run_folder_is_gone(run_experiment, tmp_path):
    from ftlab.report import build_report

    _, run_dir = run_experiment()
    shutil.rmtree(run_dir)
    run = _run_id()
    html_path, md_path = build_report(run.info.run_id, tmp_path / "out")
    html = html_path.read_text()
    assert len(_images(html)) == 4
    assert "not on this machine" in html
    assert run.data.tags["ftlab.prompt_sha256"] in html
    assert "General Medicine" in md_path.read_text()


def _two_runs_reported(run_experiment, fake_backend, tmp_path, override: str):
    """A full smoke run, then a base-only one with ``override``; (first, second, html path, md path)
    of ``ftlab report smoke``."""
    from ftlab.config.compose import compose
    from ftlab.report import build_report
    from ftlab.runner import run

    run_experiment()
    first = _run_id()
    cfg = compose(["+experiment=smoke", "backend=fake", "stages=[evaluate_base]", override], fake_backend)
    run(cfg, run_dir=tmp_path / "run2", plugins=fake_backend)
    second = _run_id()
    assert second.info.run_id != first.info.run_id
    return (first, second, *build_report("smoke", tmp_path / "out"))


def test_report_for_experiment_side_by_side_newest_first_and_escaped(run_experiment, fake_backend,
                                                                     tmp_path):
    first, second, html_path, md_path = _two_runs_reported(
        run_experiment, fake_backend, tmp_path, 'tracking.run_name="<script>alert(1)</script> & co"')
    assert html_path.name == "smoke.html"
    html, md = html_path.read_text(), md_path.read_text()
    assert "side by side (2, newest first)" in html
    assert html.index(second.info.run_id[:12]) < html.index(first.info.run_id[:12])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "<script>" not in md
    assert len(_images(html)) == 5  # 4 for the full run, 1 confusion matrix for the base-only run
    assert "not like for like" not in md  # same prompt and labels: nothing to warn about


def test_side_by_side_warns_when_runs_were_sent_different_prompts(run_experiment, fake_backend, tmp_path):
    first, second, html_path, md_path = _two_runs_reported(run_experiment, fake_backend, tmp_path,
                                                           "prompt.max_input_chars=50")
    md, html = md_path.read_text(), html_path.read_text()
    for sha in (first.data.tags["ftlab.prompt_sha256"][:12], second.data.tags["ftlab.prompt_sha256"][:12]):
        assert sha in md
    assert "were not given the same prompt" in md and "prompt=classify_portable" in md
    assert "were not given the same prompt" in html and "same label set" not in md


def test_report_unknown_reference_is_a_clear_error(run_experiment, capsys):
    from ftlab.cli import main

    run_experiment("stages=[evaluate_base]")
    assert main(["report", "smok"]) == 2
    err = capsys.readouterr().err
    assert "no experiment 'smok'" in err and "did you mean 'smoke'" in err


@pytest.mark.parametrize("value,expected", [("a|b", "a\\|b"), ("<i>", "&lt;i&gt;"), ("x\ny", "x y")])
def test_markdown_cells_are_escaped(value, expected):
    from ftlab.report.markdown import cell

    assert cell(value) == expected


def test_report_and_ui_do_not_import_model_libraries(run_experiment, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    run_experiment("stages=[evaluate_base]")
    code = ("import sys\n"
            "from ftlab.cli import main\n"
            "import ftlab.cli.ui_cmd, ftlab.cli.predict_cmd\n"
            f"assert main(['report', 'smoke', '--output', {str(tmp_path)!r}]) == 0\n"
            "heavy = ('torch', 'transformers', 'peft', 'google.cloud.bigquery')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_report_from_a_run_folder_without_mlflow(run_experiment, tmp_path):
    from ftlab.report import build_report

    _, run_dir = run_experiment("tracking.enabled=false")
    html_path, md_path = build_report(str(run_dir), tmp_path / "out")
    html, md = html_path.read_text(), md_path.read_text()
    assert len(_images(html)) == 4
    metrics = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        metrics.update(json.loads(line))
    assert f"{metrics['eval/tuned/eval/lenient/macro_f1']:.3f}" in md
    assert f"{metrics['compare/eval/mcnemar_p']:.3g}" in md
    assert "not in MLflow" in html and "Consult - History and Phy." in md


def test_run_folder_reference_prefers_its_mlflow_run(run_experiment):
    from ftlab.runs import find_runs

    _, run_dir = run_experiment("stages=[evaluate_base]")
    [run] = find_runs(str(run_dir))
    assert run.run_id == _run_id().info.run_id and run.run_dir == run_dir
