"""What bqml declares: generate only (score_labels falls back to it, recorded), lora or none, ML.EVALUATE."""

from __future__ import annotations

import json

import pytest

from ftlab.config.compose import ConfigError, check_capabilities, compose, validate

BQ = ["backend=bqml", "model=gemini_2_0_flash", "backend.project=test-project", "backend.dataset=ftlab_ds"]


def test_score_labels_falls_back_to_generate_and_lora_cls_is_refused():
    cfg = validate(compose([*BQ, "eval.decoding.mode=score_labels"]))
    (fallback,) = check_capabilities(cfg, _plugins())
    assert (fallback.key, fallback.requested, fallback.used) == ("eval.decoding.mode", "score_labels", "generate")
    assert check_capabilities(validate(compose([*BQ, "eval.decoding.mode=generate"])), _plugins()) == ()
    with pytest.raises(ConfigError, match=r"train\.method=lora_cls is not supported by backend 'bqml'; "
                                          r"it supports train\.method: none, lora"):
        validate(compose([*BQ, "eval.decoding.mode=generate", "train.method=lora_cls"]))
    with pytest.raises(ConfigError, match=r"eval\.decoding\.num_beams=4 is not supported by backend 'bqml'"):
        validate(compose([*BQ, "eval.decoding.mode=generate", "eval.decoding.num_beams=4"]))  # no beam search there


def test_run_with_score_labels_generates_and_records_the_fallback(fake_bq, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from ftlab.runner import run

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose([*BQ, f"backend.api_endpoint={fake_bq.url}", "backend.progress=false",
                   "backend.native_eval=false", "eval.decoding.mode=score_labels", "stages=[evaluate_base]",
                   "data.max_eval_rows=6", f"tracking.uri={db}"])
    run(cfg, run_dir=tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [(f["key"], f["requested"], f["used"]) for f in manifest["fallbacks"]] == [
        ("eval.decoding.mode", "score_labels", "generate")]
    assert "fallback (bqml): eval.decoding.mode=score_labels → generate" in capsys.readouterr().out
    rows = [json.loads(x) for x in (tmp_path / "run" / "eval" / "base" / "eval" / "predictions.jsonl")
            .read_text().splitlines()]
    assert len(rows) == 6 and all(r["raw_text"] for r in rows)  # generated text, parsed by the host
    client = MlflowClient(tracking_uri=db)
    (r,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert "→ generate" in r.data.tags["ftlab.fallback.eval.decoding.mode"]


def test_train_method_none_tunes_nothing(make_backend, fake_bq, tmp_path):
    from ftlab.config import TrainConfig, TrainMethod
    from ftlab.contract import TrainJob

    from ftlab_bqml.testing import load_examples, make_prompt

    backend, _ = make_backend()
    backend.run_cfg.train = TrainConfig(method=TrainMethod.none)
    trained = backend.train(TrainJob(load_examples("train", 4), load_examples("eval", 2), make_prompt(), tmp_path))
    assert trained.model == backend.base_model()
    assert not {"upload", "create_tuned_model"} & set(fake_bq.calls_per_statement())


def _plugins():
    from ftlab.plugins import get_plugins

    return get_plugins()
