"""The summarization smoke experiment end to end on local_peft (the tiny random model): base generation,
generative SFT, tuned generation, the paired comparison, the examples table and the report, all read back
through MlflowClient."""

from __future__ import annotations

import json

import pytest

HEADLINE = ("rougeL_f1", "rougeLsum_f1", "rouge1_f1", "rouge2_f1", "bleu4")


def test_smoke_on_local_peft_through_mlflow_and_the_report(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from ftlab.cli import main
    from ftlab.config.compose import compose
    from ftlab.plugins import Plugins, set_plugins
    from ftlab.runner import run

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", db)
    plugins = Plugins(load_entry_points=True)
    set_plugins(plugins)
    try:
        cfg = compose(["+experiment=mtsamples_summarize_smoke", f"tracking.uri={db}"], plugins)
        run(cfg, run_dir=tmp_path / "run", plugins=plugins)
        client = MlflowClient(tracking_uri=db)
        (r,) = [x for e in client.search_experiments() for x in client.search_runs([e.experiment_id])]
        m, rid = r.data.metrics, r.info.run_id
        assert r.info.status == "FINISHED"
        assert r.data.params["backend.name"] == "local_peft" and r.data.params["model.name"] == "tiny_random"
        for stage in ("base", "tuned"):
            for key in (*HEADLINE, "empty_rate"):
                assert 0.0 <= m[f"eval/{stage}/eval/{key}"] <= 1.0, key
            assert 0.0 <= m[f"eval/{stage}/eval/bleu"] <= 100.0 and 0.0 <= m[f"eval/{stage}/eval/chrf"] <= 100.0
            assert m[f"eval/{stage}/eval/mean_output_words"] > 0  # it generated something (eval.decoding.max_new_tokens 12)
            assert m[f"eval/{stage}/eval/failed_rows"] == 0
            rows = [json.loads(x) for x in open(client.download_artifacts(
                rid, f"eval/{stage}/eval/predictions.jsonl", str(tmp_path / stage))).read().splitlines()]
            assert len(rows) == 12 and all(set(HEADLINE) <= set(x["metrics"]) for x in rows)
        assert "train/loss" in m  # generative SFT ran (loss on the description's tokens)
        for key in HEADLINE:
            d = m[f"compare/eval/{key}_delta"]
            assert d == pytest.approx(m[f"eval/tuned/eval/{key}"] - m[f"eval/base/eval/{key}"])
            assert m[f"compare/eval/{key}_delta_ci_low"] <= d <= m[f"compare/eval/{key}_delta_ci_high"]
            assert sum(m[f"compare/eval/{key}_{x}"] for x in ("wins", "ties", "losses")) == 12
        df = client.load_table(r.info.experiment_id, "compare/eval/examples.json", run_ids=[rid])
        assert len(df) == 12 and list(df.columns)[:5] == ["id", "input", "reference", "base_output", "tuned_output"]
        out = tmp_path / "reports"
        assert main(["report", rid, "--output", str(out), "--tracking-uri", db]) == 0
        page = next(out.glob("*.html")).read_text()
        for text in ("every headline metric", "Examples side by side on <code>eval</code>: a sample of 8 of 12",
                     "Largest gains (rougeL_f1", "Largest losses (rougeL_f1", "Per-example rougeL_f1 on eval",
                     "Training loss per step", "rougeLsum_f1"):
            assert text in page, text
    finally:
        set_plugins(None)
