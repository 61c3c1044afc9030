"""Device and dtype selection over faked device descriptions (no torch patching), the runtime's tags,
and the QLoRA decision (refusal and fallback) made before any weights load."""

from __future__ import annotations

import pytest
import torch
from local_peft_helpers import make_cfg

from ftlab_local_peft.device import make_runtime
from ftlab_local_peft.hardware import DeviceError, DeviceInfo, select_device, select_dtype
from ftlab_local_peft.quantization import QuantizationError, resolve

CPU = {"type": "cpu", "name": "Fake EPYC", "bf16": False, "total_memory": 8 << 30, "free_memory": 6 << 30}
T4 = {"type": "cuda", "index": 0, "name": "Tesla T4", "capability": (7, 5), "total_memory": 15 << 30,
      "free_memory": 14 << 30, "driver": "550.54", "cuda": "12.4"}
A100 = {"type": "cuda", "index": 1, "name": "A100-SXM4-40GB", "capability": (8, 0), "total_memory": 40 << 30}
P100 = {"type": "cuda", "index": 0, "name": "Tesla P100", "capability": (6, 0)}
TPU = {"type": "xla", "index": 0, "name": "v5litepod-8"}
MPS = {"type": "mps", "name": "Apple MPS"}


def no_probe(_info):
    raise AssertionError("the cpu probe must not run")


@pytest.mark.parametrize("devices,want", [
    ([T4, TPU, MPS, CPU], "cuda:0"), ([TPU, MPS, CPU], "xla:0"), ([MPS, CPU], "mps"), ([CPU], "cpu"),
    ([CPU, MPS], "mps")])
def test_auto_prefers_cuda_then_xla_then_mps_then_cpu(devices, want):
    info, reason = select_device("auto", devices)
    assert info.torch_name == want and reason.startswith(f"auto: {info.type} is present")


def test_auto_with_two_gpus_takes_the_first_and_says_so():
    info, reason = select_device("auto", [T4, A100, CPU])
    assert info.name == "Tesla T4" and "2 cuda devices, using the first" in reason


def test_explicit_index_picks_that_gpu():
    info, reason = select_device("cuda:1", [T4, A100, CPU])
    assert (info.name, reason) == ("A100-SXM4-40GB", "requested")


@pytest.mark.parametrize("req,words", [("cuda", ["backend.device=cuda", "cpu (Fake EPYC)", "no CUDA GPU"]),
                                       ("cuda:3", ["backend.device=cuda:3"]),
                                       ("xla", ["torch_xla"]), ("mps", ["Apple silicon"])])
def test_a_device_the_machine_lacks_fails_naming_the_key_and_what_is_there(req, words):
    with pytest.raises(DeviceError) as exc:
        select_device(req, [CPU] if req != "cuda:3" else [T4, CPU])
    for w in words:
        assert w in str(exc.value)


def test_unknown_device_name_fails_by_key():
    with pytest.raises(DeviceError, match="backend.device='tpu'.*auto, cpu, cuda, cuda:N, mps, xla"):
        select_device("tpu", [CPU])


@pytest.mark.parametrize("device,want,words", [
    (A100, "bfloat16", "8.0 ≥ 8.0"), (T4, "float16", "grad scaler"), (P100, "float32", "6.0 < 7.0"),
    (TPU, "bfloat16", "TPU"), (MPS, "float32", "mps"), (CPU, "float32", "no avx512_bf16")])
def test_auto_dtype_per_device(device, want, words):
    dtype, reason = select_dtype("auto", device, cpu_policy=no_probe)
    assert dtype == want and words in reason


def test_cpu_with_native_bf16_asks_the_probe_policy():
    seen = []
    dtype, reason = select_dtype("auto", {**CPU, "bf16": True},
                                 cpu_policy=lambda info: seen.append(info.name) or ("bfloat16", "probe 2.1x"))
    assert (dtype, reason, seen) == ("bfloat16", "probe 2.1x", ["Fake EPYC"])


def test_explicit_dtype_is_honoured_and_an_emulated_one_is_flagged():
    assert select_dtype("fp32", A100) == ("float32", "requested")
    dtype, reason = select_dtype("bf16", T4)
    assert dtype == "bfloat16" and "7.5 < 8.0" in reason
    with pytest.raises(DeviceError, match="backend.dtype='float8'"):
        select_dtype("float8", CPU)


def test_runtime_tags_record_device_memory_driver_dtype_and_why():
    rt, tags = make_runtime(make_cfg(backend={"device": "auto", "dtype": "auto"}).backend, devices=[T4, CPU])
    assert rt.device == torch.device("cuda:0") and rt.fp16 and not rt.bf16 and rt.amp == torch.float16
    assert rt.stepper  # the loop asks it for the scaler
    assert tags["local_peft.device"] == "cuda:0"
    assert tags["local_peft.device_name"] == "Tesla T4" and tags["local_peft.device_memory_gib"] == "15.0"
    assert tags["local_peft.cuda_capability"] == "7.5" and tags["local_peft.cuda_driver"] == "550.54"
    assert tags["local_peft.cuda_version"] == "12.4" and tags["local_peft.dtype"] == "float16"
    assert "grad scaler" in tags["local_peft.dtype_reason"] and tags["local_peft.grad_scaler"] == "true"
    assert tags["local_peft.device_reason"].startswith("auto: cuda is present")


def test_runtime_on_a_cpu_description_keeps_the_old_tags():
    rt, tags = make_runtime(make_cfg().backend, devices=[CPU])  # make_cfg asks dtype=float32
    assert rt.device == torch.device("cpu") and rt.amp is None and rt.info == DeviceInfo.of(CPU)
    assert (tags["local_peft.device"], tags["local_peft.dtype"], tags["local_peft.dtype_reason"]) == \
        ("cpu", "float32", "requested")


def test_quantization_off_cuda_fails_naming_key_and_device():
    cfg = make_cfg(train={"quantization": "4bit"})
    with pytest.raises(QuantizationError) as exc:
        resolve(cfg, DeviceInfo.of(CPU))
    msg = str(exc.value)
    assert "train.quantization=4bit" in msg and "cpu (Fake EPYC)" in msg and "quantization_fallback=none" in msg


def test_quantization_fallback_none_trains_plain_lora_and_tags_it(capsys):
    cfg = make_cfg(train={"quantization": "8bit", "quantization_fallback": "none"})
    mode, tags = resolve(cfg, DeviceInfo.of(MPS))
    assert mode == "none" and tags["local_peft.quantization"] == "none"
    assert tags["ftlab.fallback.train.quantization"].startswith("8bit → none: the run's device is mps")
    assert "train.quantization fallback: 8bit → none" in capsys.readouterr().out


def test_quantization_on_cuda_needs_bitsandbytes_or_a_folder_model():
    import importlib.util

    cfg = make_cfg(train={"quantization": "4bit"})
    if importlib.util.find_spec("bitsandbytes") is None:
        with pytest.raises(QuantizationError, match=r"bitsandbytes is not installed.*ftlab-local-peft\[cuda\]"):
            resolve(cfg, DeviceInfo.of(T4))
    else:
        assert resolve(cfg, DeviceInfo.of(T4))[0] == "4bit"
    gguf = make_cfg(train={"quantization": "4bit"}, model={"source": "gguf_package"})
    with pytest.raises(QuantizationError):
        resolve(gguf, DeviceInfo.of(T4))


def test_bad_quantization_values_fail_at_validation():
    with pytest.raises(ValueError, match="train.quantization='3bit'"):
        make_cfg(train={"quantization": "3bit"})
    with pytest.raises(ValueError, match="train.quantization_fallback='lora'"):
        make_cfg(train={"quantization_fallback": "lora"})


def test_the_backend_refuses_quantization_before_loading_any_weights(tmp_path):
    from local_peft_helpers import Recorder

    from ftlab_local_peft.backend import LocalPeftBackend

    cfg = make_cfg(train={"quantization": "4bit"}, backend={"device": "cpu"})
    with pytest.raises(QuantizationError, match="train.quantization=4bit"):
        LocalPeftBackend(cfg, Recorder(tmp_path).ctx)  # the constructor loads nothing


def test_one_process_per_gpu_takes_its_local_rank():
    info, reason = select_device("auto", [T4, {**T4, "index": 1, "name": "second"}, CPU], local_rank=1)
    assert info.name == "second" and "LOCAL_RANK" in reason
    assert select_device("cuda", [T4, {**T4, "index": 1}], local_rank=0)[0].index == 0
    assert select_device("cuda:0", [T4, {**T4, "index": 1}], local_rank=1)[0].index == 0  # explicit wins
    assert select_device("auto", [T4, CPU], local_rank=3)[0].index == 0  # its own CUDA_VISIBLE_DEVICES
    assert select_device("auto", [CPU], local_rank=1)[0].type == "cpu"  # gloo on CPU: no GPU to pick
    with pytest.raises(DeviceError, match="LOCAL_RANK=2"):
        select_device("auto", [T4, {**T4, "index": 1}], local_rank=2)


def test_make_runtime_reads_local_rank_from_the_launcher(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    rt, tags = make_runtime(make_cfg(backend={"device": "auto", "dtype": "auto"}).backend, devices=[T4, A100, CPU])
    assert str(rt.device) == "cuda:1" and tags["local_peft.device_name"] == "A100-SXM4-40GB"
    assert rt.bf16 and "LOCAL_RANK" in tags["local_peft.device_reason"]


def test_this_machine_is_described_with_its_cpu_last():
    import os

    from ftlab_local_peft.hardware import describe_devices, free_memory

    devices = describe_devices()
    cpu = devices[-1]
    assert cpu.type == "cpu" and cpu.name and [d.type for d in devices].count("cpu") == 1
    if os.path.exists("/proc/meminfo"):
        assert cpu.total_memory > 0 and 0 < free_memory(cpu) <= cpu.total_memory
    assert ("cuda" in [d.type for d in devices]) == torch.cuda.is_available()
