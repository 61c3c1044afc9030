"""``ftlab replay`` warns when the replay ran on another device or in another precision than the record."""

from __future__ import annotations

from pathlib import Path

from ftlab.replay import ReplayResult, runtime_changes, table

RECORDED = {"backend_runtime": {"demo.device": "cuda:0", "demo.device_name": "NVIDIA A100-SXM4-40GB",
                                "demo.dtype": "bfloat16", "demo.dtype_reason": "cuda capability 8.0",
                                "demo.device_free_gib": "38.1", "demo.quantization": "4bit"}}


def test_device_and_dtype_changes_are_listed_and_volatile_tags_are_not():
    replayed = {"backend_runtime": {**RECORDED["backend_runtime"], "demo.device": "cpu",
                                    "demo.device_name": "AMD EPYC", "demo.dtype": "float32",
                                    "demo.dtype_reason": "requested", "demo.device_free_gib": "20.0"}}
    changes = runtime_changes(RECORDED, replayed)
    assert changes == ["demo.device: recorded 'cuda:0', replayed 'cpu'",
                       "demo.device_name: recorded 'NVIDIA A100-SXM4-40GB', replayed 'AMD EPYC'",
                       "demo.dtype: recorded 'bfloat16', replayed 'float32'"]


def test_the_same_runtime_or_an_old_record_warns_about_nothing():
    assert runtime_changes(RECORDED, RECORDED) == []
    assert runtime_changes({}, RECORDED) == [] and runtime_changes(RECORDED, {}) == []


def test_the_replay_table_prints_the_warning_without_counting_it_as_a_difference():
    result = ReplayResult("abc", Path("."), None, [("eval/tuned/eval/macro_f1", 0.5, 0.5)],
                          runtime=["demo.dtype: recorded 'bfloat16', replayed 'float32'"])
    lines = table(result)
    assert "warning: ran on a different device or precision: demo.dtype: recorded 'bfloat16'" in lines[-1]
    assert not result.differences and any("all identical" in x for x in lines)
