"""Cross-validation folds on local_peft: what does not depend on training is computed once per process."""

from __future__ import annotations

import pytest
from local_peft_helpers import Recorder, make_cfg, make_examples, make_prompt

from ftlab.contract import Decoding, TrainJob


@pytest.mark.parametrize("document_tokens", [0, 12])
def test_folds_reuse_frozen_states_and_document_means(tmp_path, document_tokens):
    import torch

    from ftlab.cv import assign_folds
    from ftlab_local_peft.backend import LocalPeftBackend

    cfg = make_cfg(train={"method": "lora_cls", "max_steps": 4, "multi_label": "rows"},
                   backend={"adapted_tokens": 4, "document_tokens": document_tokens, "document_chunk_tokens": 8,
                            "head_init": "probe"})
    rec = Recorder(tmp_path)
    b = LocalPeftBackend(cfg, rec.ctx)
    rows, prompt = make_examples(24), make_prompt(cfg)
    folds = assign_folds(rows, 3, 0, "text")
    computed = []
    real = b.features.prompt_states

    def counting(model, prompts, *a, **kw):  # how many states each call had to compute
        before = {tuple(p) for p in prompts if b.features.states.get(a[0], a[1], p) is not None}
        computed.append(len({tuple(p) for p in prompts} - before))
        return real(model, prompts, *a, **kw)

    b.features.prompt_states = counting
    for k in range(3):
        held = tuple(r for r, f in zip(rows, folds) if f == k)
        rest = tuple(r for r, f in zip(rows, folds) if f != k)
        out = tmp_path / f"fold{k}"
        out.mkdir()
        trained = b.train(TrainJob(train=rest, eval=held, prompt=prompt, out_dir=out, repeat=True))
        preds = b.predict(trained.model, held, prompt, Decoding(batch_size=4))
        assert [p.id for p in preds.items] == [r.id for r in held]
    # fold 1 computed its 16 training rows; fold 2 only the 8 it had not seen (fold 1's held-out rows,
    # which fold 1's prediction computed and kept); fold 3 nothing new
    assert computed[0] == len(rows) - len([f for f in folds if f == 0])
    assert sum(computed) == len(rows)
    assert len(b.features.states) == len(rows)
    if document_tokens:
        assert len(b.features.documents) == len({r.text for r in rows})
    # the final training on all rows (no repeat) reuses them and lets the store drop them
    out = tmp_path / "final"
    out.mkdir()
    b.train(TrainJob(train=rows, eval=(), prompt=prompt, out_dir=out))
    assert computed[-1] == 0 and len(b.features.states) == 0


def test_a_fold_result_equals_a_fresh_process(tmp_path):
    """Kept features change speed, never the numbers: fold 2 in a backend that trained fold 1 first
    predicts what a new backend training only fold 2 predicts."""
    from ftlab_local_peft.backend import LocalPeftBackend

    cfg = make_cfg(train={"method": "lora_cls", "max_steps": 4},
                   backend={"adapted_tokens": 4, "head_init": "probe"})
    rows, prompt = make_examples(16), make_prompt(cfg)
    a, b_rows = rows[:8], rows[8:]

    def fold(backend, train, held, name, repeat=True):
        out = tmp_path / name
        out.mkdir()
        t = backend.train(TrainJob(train=train, eval=held, prompt=prompt, out_dir=out, repeat=repeat))
        return backend.predict(t.model, held, prompt, Decoding(batch_size=4))

    shared = LocalPeftBackend(cfg, Recorder(tmp_path).ctx)
    fold(shared, b_rows, a, "s1")
    second = fold(shared, a, b_rows, "s2")
    fresh = fold(LocalPeftBackend(cfg, Recorder(tmp_path).ctx), a, b_rows, "f2", repeat=False)
    assert [p.raw_text for p in second.items] == [p.raw_text for p in fresh.items]
    for p, q in zip(second.items, fresh.items):  # fp32; the states came from passes over other batches
        assert p.scores == pytest.approx(q.scores, abs=1e-3)  # (another shared prefix): ~1e-4 apart


def test_the_store_is_shared_per_model_dtype_and_device_unless_turned_off():
    from types import SimpleNamespace

    import torch

    from ftlab_local_peft.device import Runtime
    from ftlab_local_peft.features import StateCache, store_for
    from ftlab_local_peft.plugin import LocalModelConfig, LocalPeftConfig

    gguf, on = LocalModelConfig(), LocalPeftConfig()
    cpu16, cpu32 = Runtime(torch.device("cpu"), True), Runtime(torch.device("cpu"), False)
    assert store_for(gguf, on, cpu16) is store_for(LocalModelConfig(), LocalPeftConfig(), cpu16)
    assert store_for(gguf, on, cpu16) is not store_for(gguf, on, cpu32)
    assert store_for(gguf, LocalPeftConfig(share_features=False), cpu16) is not store_for(gguf, on, cpu16)
    tiny = LocalModelConfig(source="tiny_random", name="tiny")
    assert store_for(tiny, on, cpu16) is not store_for(tiny, on, cpu16)
    cache = StateCache(max_splits=2)
    state = SimpleNamespace()
    cache.put(1, 4, [1], state)
    cache.put(2, 4, [1], state)
    cache.put(1, 4, [2], state)
    assert len(cache) == 3
    cache.put(3, 8, [1], state)  # a third split drops the oldest
    assert cache.get(1, 4, [1]) is None and cache.get(2, 4, [1]) is state and len(cache) == 2
