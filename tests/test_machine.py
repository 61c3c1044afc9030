"""ftlab.machine: CPU model and flags from /proc/cpuinfo text."""

from __future__ import annotations

from ftlab.machine import cpu_info, perf_flags, usable_cores

TWO_CPUS = ("processor\t: 0\nmodel name\t: AMD EPYC 9B14\n"
            "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 avx512_vnni\n\n"
            "processor\t: 1\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")


def test_cpu_info_takes_the_first_model_and_flags():
    model, flags = cpu_info(TWO_CPUS)
    assert model == "AMD EPYC 9B14"
    assert {"avx2", "avx512f", "avx512_bf16", "avx512_vnni"} <= flags and "amx_bf16" not in flags
    assert perf_flags(flags) == ["avx2", "avx512f", "avx512_bf16", "avx512_vnni"]


def test_arm_features_line_and_missing_text():
    assert cpu_info("Features\t: fp asimd bf16\n")[1] == frozenset({"fp", "asimd", "bf16"})
    assert cpu_info("") == ("unknown cpu", frozenset())
    assert usable_cores() >= 1
