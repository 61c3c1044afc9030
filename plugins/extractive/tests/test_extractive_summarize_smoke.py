"""The summarization smoke experiment end to end on the extractive floor: ftlab's ROUGE/BLEU in MLflow,
the paired comparison of base (lead-20) and tuned (lead-k) for every headline metric, the examples table
logged to MLflow, and ``ftlab report`` showing the examples side by side. Everything read back through
MlflowClient, as a user would."""

from __future__ import annotations

import json
import re

import pytest

HEADLINE = ("rougeL_f1", "rougeLsum_f1", "rouge1_f1", "rouge2_f1", "bleu4")


@pytest.fixture
def smoke_run(plugins, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from ftlab.config.compose import compose
    from ftlab.runner import run

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", db)
    cfg = compose(["+experiment=mtsamples_summarize_smoke", "backend=extractive", f"tracking.uri={db}"], plugins)
    run(cfg, run_dir=tmp_path / "run", plugins=plugins)
    client = MlflowClient(tracking_uri=db)
    (r,) = [x for e in client.search_experiments() for x in client.search_runs([e.experiment_id])]
    return client, r, db


def _rows(client, run_id, rel, dest):
    return [json.loads(x) for x in open(client.download_artifacts(run_id, rel, str(dest))).read().splitlines()]


def test_smoke_on_extractive_logs_metrics_comparison_and_examples_table(smoke_run, tmp_path):
    client, r, _ = smoke_run
    m, rid = r.data.metrics, r.info.run_id
    assert r.info.status == "FINISHED" and r.data.params["backend.name"] == "extractive"
    assert r.data.params["eval.task"] == "summarization"
    for stage in ("base", "tuned"):
        for key in (*HEADLINE, "bleu", "chrf", "empty_rate", "mean_output_words", "failed_rows"):
            assert f"eval/{stage}/eval/{key}" in m, (stage, key)
        assert 0.0 < m[f"eval/{stage}/eval/rougeL_f1"] < 1.0 and m[f"eval/{stage}/eval/failed_rows"] == 0
        # per-example scores: ROUGE-L F1 is a mean, so the corpus value is the mean of the rows' own scores
        rows = _rows(client, rid, f"eval/{stage}/eval/predictions.jsonl", tmp_path / stage)
        assert len(rows) == 12 and all(set(HEADLINE) <= set(x["metrics"]) for x in rows)
        assert sum(x["metrics"]["rougeL_f1"] for x in rows) / 12 == pytest.approx(m[f"eval/{stage}/eval/rougeL_f1"])
    assert m["train/k"] >= 1  # chosen on the training split
    for key in HEADLINE:  # the paired comparison of every headline metric
        d = m[f"compare/eval/{key}_delta"]
        assert d == pytest.approx(m[f"eval/tuned/eval/{key}"] - m[f"eval/base/eval/{key}"])
        assert m[f"compare/eval/{key}_delta_ci_low"] <= d <= m[f"compare/eval/{key}_delta_ci_high"]
        assert m[f"compare/eval/{key}_wins"] + m[f"compare/eval/{key}_ties"] + m[f"compare/eval/{key}_losses"] == 12
    # the examples table: an MLflow table (the UI lists it), one row per example, both outputs and scores
    assert {"path": "compare/eval/examples.json", "type": "table"} in json.loads(r.data.tags["mlflow.loggedArtifacts"])
    df = client.load_table(r.info.experiment_id, "compare/eval/examples.json", run_ids=[rid])
    assert len(df) == 12
    base = {x["id"]: x for x in _rows(client, rid, "eval/base/eval/predictions.jsonl", tmp_path / "b2")}
    tuned = {x["id"]: x for x in _rows(client, rid, "eval/tuned/eval/predictions.jsonl", tmp_path / "t2")}
    for row in df.to_dict("records"):
        b, t = base[row["id"]], tuned[row["id"]]
        assert row["base_output"] == b["raw_text"] and row["tuned_output"] == t["raw_text"]
        assert row["reference"] == b["references"][0]
        assert row["base_rougeL_f1"] == pytest.approx(b["metrics"]["rougeL_f1"])
        assert row["delta"] == pytest.approx(t["metrics"]["rougeL_f1"] - b["metrics"]["rougeL_f1"])
        assert row["input"] and row["base_output"].split()[:3] == row["input"].split()[:3]  # lead-k of the input
    assert (df["delta"] > 0).sum() == m["compare/eval/rougeL_f1_wins"]


def test_report_shows_the_examples_side_by_side_gains_losses_and_histogram(smoke_run, tmp_path):
    import base64
    import html as htmllib

    from ftlab.cli import main

    client, r, db = smoke_run
    m = r.data.metrics
    out = tmp_path / "reports"
    assert main(["report", r.info.run_id, "--output", str(out), "--tracking-uri", db]) == 0
    page = next(out.glob("*.html")).read_text()
    md = next(out.glob("*.md")).read_text()
    for text in ("Paired comparison on <code>eval</code> (same items), every headline metric",
                 "Examples side by side on <code>eval</code>: a sample of 8 of 12", "Largest gains (rougeL_f1",
                 "Largest losses (rougeL_f1", "Per-example rougeL_f1 on eval: tuned minus base"):
        assert text in page, text
    for text in ("Examples side by side on `eval`: a sample of 8 of 12", "### Largest gains", "### Largest losses"):
        assert text in md, text
    assert "Per-class F1" not in page and "macro-F1 delta" not in page  # no classification sections
    # the headline metric and its CI, as MLflow has them
    ci = (f"{m['compare/eval/rougeL_f1_delta']:+.3f} [{m['compare/eval/rougeL_f1_delta_ci_low']:+.3f}, "
          f"{m['compare/eval/rougeL_f1_delta_ci_high']:+.3f}]")
    assert ci in page and ci in md
    wtl = f"{int(m['compare/eval/rougeL_f1_wins'])} / {int(m['compare/eval/rougeL_f1_ties'])} / " \
          f"{int(m['compare/eval/rougeL_f1_losses'])}"
    assert wtl in page
    # the largest gain is the table's best delta, shown first under its heading, with its outputs
    df = client.load_table(r.info.experiment_id, "compare/eval/examples.json", run_ids=[r.info.run_id])
    best = df.sort_values("delta", ascending=False, kind="stable").iloc[0]
    gains = page.split("Largest gains", 1)[1].split("Largest losses", 1)[0]
    first = re.search(r"<tr><td><code>([^<]+)</code>", gains).group(1)
    assert first == best["id"] and f"{best['delta']:+.3f}" in gains
    assert htmllib.escape(best["tuned_output"], quote=True)[:60] in gains
    worst = df.sort_values("delta", kind="stable").iloc[0]
    losses = page.split("Largest losses", 1)[1]
    assert re.search(r"<tr><td><code>([^<]+)</code>", losses).group(1) == worst["id"]
    imgs = [base64.b64decode(x) for x in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    assert len(imgs) == 1 and imgs[0].startswith(b"\x89PNG")  # the delta histogram (no training loss here)
