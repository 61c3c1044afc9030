"""dtype_probe: explicit requests, CPU flags, the per-machine cache (no test times anything)."""

from __future__ import annotations

import json

import pytest
import torch

from ftlab.machine import cpu_info
from ftlab_local_peft import dtype_probe as dp

AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n"
WITH_BF16 = ("processor\t: 0\nmodel name\t: AMD EPYC 9B14\n"
             "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 avx512_vnni\n\n"
             "processor\t: 1\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")


def must_not_probe():
    raise AssertionError("probe must not run")


def fake_probe(speedup: float, calls: list):
    def run():
        calls.append(1)
        return dp.ProbeResult(fp32_s=0.01 * speedup, bf16_s=0.01)
    return run


@pytest.mark.parametrize("req,want", [("float32", torch.float32), ("bfloat16", torch.bfloat16),
                                      ("bf16", torch.bfloat16), ("FP32", torch.float32)])
def test_explicit_request_is_honoured_without_probing(req, want, tmp_path):
    dtype, reason = dp.choose_dtype("cpu", req, cpuinfo=AVX2_ONLY, cache_dir=tmp_path, run_probe=must_not_probe)
    assert dtype == want and reason == "requested"
    assert not list(tmp_path.iterdir())


def test_unknown_request_fails_by_name():
    with pytest.raises(ValueError, match="'float8'"):
        dp.choose_dtype("cpu", "float8")


def test_cpu_without_bf16_flags_is_float32_without_probing(tmp_path):
    dtype, reason = dp.choose_dtype("cpu", cpuinfo=AVX2_ONLY, cache_dir=tmp_path, run_probe=must_not_probe)
    assert dtype == torch.float32
    assert "avx512_bf16" in reason and "without probing" in reason
    assert not (tmp_path / dp.CACHE_FILE).exists()


def test_cache_key_names_model_flags_torch_and_threads():
    model, flags = cpu_info(WITH_BF16)
    key = dp.cache_key(model, flags, "2.13.0", 2)
    assert key == "AMD EPYC 9B14|avx2,avx512f,avx512_bf16,avx512_vnni|torch 2.13.0|2 threads"
    assert dp.cache_key(model, flags, "2.13.0", 4) != key
    assert dp.cache_key(model, flags, "2.14.0", 2) != key
    assert dp.cache_key(model, flags - {"avx512_bf16"}, "2.13.0", 2) != key
    assert dp.cache_key(model, flags | {"sse4_2"}, "2.13.0", 2) == key  # flags that do not matter


def test_probe_decision_is_cached_and_reused(tmp_path):
    calls: list = []
    dtype, reason = dp.choose_dtype("cpu", cpuinfo=WITH_BF16, cache_dir=tmp_path,
                                    run_probe=fake_probe(1.9, calls))
    assert dtype == torch.bfloat16 and calls == [1]
    assert reason.startswith("cpu has avx512_bf16; probe bf16 1.90x faster than fp32 (measured now")
    (entry,) = json.loads((tmp_path / dp.CACHE_FILE).read_text()).values()
    assert entry["speedup"] == 1.9 and entry["date"]
    assert [p.name for p in tmp_path.iterdir()] == [dp.CACHE_FILE]  # no temporary file left behind

    dtype2, reason2 = dp.choose_dtype(torch.device("cpu"), "auto", cpuinfo=WITH_BF16, cache_dir=tmp_path,
                                      run_probe=must_not_probe)
    assert dtype2 == torch.bfloat16 and f"(cached {entry['date']})" in reason2


def test_slow_bf16_is_float32_and_other_machines_get_their_own_entry(tmp_path, monkeypatch):
    calls: list = []
    dtype, reason = dp.choose_dtype("cpu", cpuinfo=WITH_BF16, cache_dir=tmp_path,
                                    run_probe=fake_probe(1.1, calls))
    assert dtype == torch.float32 and "only 1.10x" in reason
    monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
    dp.choose_dtype("cpu", cpuinfo=WITH_BF16, cache_dir=tmp_path, run_probe=fake_probe(1.5, calls))
    assert calls == [1, 1]
    assert len(json.loads((tmp_path / dp.CACHE_FILE).read_text())) == 2


def test_corrupt_cache_is_measured_again_and_replaced(tmp_path, monkeypatch):
    (tmp_path / dp.CACHE_FILE).write_text("{not json")
    monkeypatch.setenv("FTLAB_CACHE_DIR", str(tmp_path))
    calls: list = []
    dtype, _ = dp.choose_dtype("cpu", cpuinfo=WITH_BF16, run_probe=fake_probe(2.0, calls))
    assert dtype == torch.bfloat16 and calls == [1]
    assert json.loads((tmp_path / dp.CACHE_FILE).read_text())


def test_real_probe_returns_both_timings():
    r = dp.probe(budget_s=0.05)
    assert r.fp32_s > 0 and r.bf16_s > 0 and r.speedup > 0
