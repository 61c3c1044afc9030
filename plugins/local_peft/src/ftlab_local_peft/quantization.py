"""QLoRA: the frozen base loaded in 4 or 8 bits with bitsandbytes, LoRA trained on top (CUDA only).

``train.quantization=4bit`` is NF4 with double quantisation, ``8bit`` LLM.int8; matmuls run in the
compute dtype ``backend.dtype`` chose. :func:`resolve` decides *before the model loads*: on CUDA with
bitsandbytes installed (``pip install 'ftlab-local-peft[cuda]'``) the run quantises; anywhere else it
stops with an error naming the key and the device, or, with ``train.quantization_fallback=none``,
prints and tags (``ftlab.fallback.train.quantization``) a fallback to plain LoRA. bitsandbytes is
imported only here, inside functions, so a CPU install never needs it.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

MODES = ("none", "4bit", "8bit")
QUANTIZABLE_SOURCES = ("local_dir", "tiny_random")
"""Model sources loaded through ``from_pretrained`` of safetensors weights (a GGUF file is always
dequantised to fp32 by transformers and is not re-quantised here)."""


class QuantizationError(ValueError):
    """``train.quantization`` cannot run on this device, model source or install."""


def _source(model_cfg) -> str:
    return getattr(model_cfg.source, "value", model_cfg.source)


def resolve(cfg, info) -> tuple[str, dict[str, str]]:
    """``(mode to load with, tags)`` for ``cfg.train.quantization`` on device ``info`` (a
    :class:`~ftlab_local_peft.hardware.DeviceInfo`); raises :class:`QuantizationError` unless
    ``train.quantization_fallback=none`` allows plain LoRA."""
    tc = cfg.train
    want = getattr(tc, "quantization", "none")
    if want == "none":
        return "none", {"local_peft.quantization": "none"}
    if want not in MODES:
        raise QuantizationError(f"train.quantization={want!r}: use one of {', '.join(MODES)}")
    where = f"{info.torch_name}" + (f" ({info.name})" if info.name else "")
    if info.type != "cuda":
        why = f"the run's device is {where} (backend.device={cfg.backend.device}), and bitsandbytes needs CUDA"
    elif importlib.util.find_spec("bitsandbytes") is None:
        why = "bitsandbytes is not installed (pip install 'ftlab-local-peft[cuda]')"
    elif _source(cfg.model) not in QUANTIZABLE_SOURCES:
        why = (f"model.source={_source(cfg.model)} is not quantised here: use a Hugging Face folder "
               "(model.source=local_dir, model.path=..., model.file=null)")
    else:
        return want, {"local_peft.quantization": want,
                      "local_peft.quantization_config": _describe(want)}
    if getattr(tc, "quantization_fallback", "error") == "none":
        msg = f"{want} → none: {why}; training plain LoRA on unquantised weights"
        print(f"[local_peft] train.quantization fallback: {msg}")
        return "none", {"local_peft.quantization": "none", "ftlab.fallback.train.quantization": msg}
    raise QuantizationError(f"train.quantization={want} cannot run: {why}. Set train.quantization=none, "
                            "or train.quantization_fallback=none to train plain LoRA instead")


def _describe(mode: str) -> str:
    return "nf4, double quantisation, compute dtype = backend.dtype" if mode == "4bit" else "LLM.int8"


def bnb_config(mode: str, compute_dtype):
    """transformers' ``BitsAndBytesConfig`` for ``mode``."""
    from transformers import BitsAndBytesConfig

    if mode == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    if mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise QuantizationError(f"train.quantization={mode!r}: use one of {', '.join(MODES)}")


def load_quantized(model_cfg, device, vocab_size: int, mode: str, compute_dtype):
    """The base model of ``model_cfg`` quantised onto ``device`` (a CUDA device), in eval mode.

    A tiny random model is built, written with ``save_pretrained`` to a temporary folder and loaded
    back through the same ``from_pretrained`` path as a real folder."""
    from transformers import AutoModelForCausalLM

    from ftlab.paths import resolve as resolve_path
    from ftlab_local_peft.loading import build_tiny_model

    kw = {"quantization_config": bnb_config(mode, compute_dtype), "device_map": {"": device.index or 0},
          "dtype": compute_dtype}
    source = _source(model_cfg)
    if source == "local_dir":
        model = AutoModelForCausalLM.from_pretrained(str(resolve_path(model_cfg.path)), **kw)
    elif source == "tiny_random":
        with tempfile.TemporaryDirectory(prefix="ftlab-tiny-") as tmp:
            build_tiny_model(model_cfg.tiny, max(vocab_size, model_cfg.tiny.vocab_size)).save_pretrained(Path(tmp))
            model = AutoModelForCausalLM.from_pretrained(tmp, **kw)
    else:
        raise QuantizationError(f"train.quantization={mode}: model.source={source} is not quantised here")
    model.eval()
    return model


def prepare_for_training(model):
    """peft's k-bit preparation (norms in fp32, input gradients on), once per model; checkpointing stays
    the loop's (``backend.gradient_checkpointing``)."""
    if getattr(model, "_ftlab_kbit_ready", False):
        return model
    from peft import prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model._ftlab_kbit_ready = True
    return model
