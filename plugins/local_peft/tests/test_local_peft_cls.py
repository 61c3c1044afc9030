"""train.method=lora_cls on the tiny model: exact frozen-layer reuse, head predictions, reload, options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from local_peft_helpers import Recorder, make_cfg, make_examples, make_prompt

from ftlab.contract import Decoding, Example, TrainJob

CLS_TRAIN = {"method": "lora_cls", "max_steps": 60, "learning_rate": 1e-2, "logging_steps": 10,
             "eval_loss": True, "class_weighting": "sqrt", "multi_label": "soft",
             "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}
CLS_BACKEND = {"train_layers": 0, "pooling": "last_context", "head_lr_multiplier": 5.0, "adapted_tokens": 8}


class TrainedCls:
    def __init__(self, root: Path):
        from ftlab_local_peft.backend import LocalPeftBackend

        (root / "run").mkdir()
        (root / "out").mkdir()
        self.cfg = make_cfg(train=CLS_TRAIN, backend=CLS_BACKEND)
        self.recorder = Recorder(root / "run")
        self.backend = LocalPeftBackend(self.cfg, self.recorder.ctx)
        self.prompt = make_prompt(self.cfg)
        self.train_ex, self.eval_ex = make_examples(32), make_examples(12, "eval", seed=1)
        self.base = self.backend.predict(self.backend.base_model(), self.eval_ex, self.prompt,
                                         Decoding(batch_size=4))
        self.cached_after_base = len(self.backend.features.states)
        self.result = self.backend.train(TrainJob(train=self.train_ex, eval=self.eval_ex,
                                                  prompt=self.prompt, out_dir=root / "out"))
        self.cached_after_train = len(self.backend.features.states)
        self.tuned = self.backend.predict(self.result.model, self.eval_ex, self.prompt,
                                          Decoding(batch_size=4))


@pytest.fixture(scope="module")
def cls(tmp_path_factory):
    return TrainedCls(tmp_path_factory.mktemp("cls"))


def test_base_evaluation_keeps_the_frozen_states_for_the_tuned_one(cls):
    assert cls.cached_after_base == len(cls.eval_ex)  # the packed score_labels pass captured them
    assert cls.cached_after_train == len(cls.eval_ex)  # training rows' states are not kept after training
    assert len(cls.backend.features.states) == 0  # the tuned evaluation used the eval states, then freed them


def test_training_learns_and_logs(cls):
    losses = [h["train/loss"] for h in cls.result.history if "train/loss" in h]
    assert len(losses) == 6 and losses[-1] < 0.3 * losses[0], losses
    assert any("train/eval_loss" in h for h in cls.result.history)
    m = cls.result.metrics
    assert m["train/split_layer"] == 0.0  # train_layers=0: every layer tuned
    assert m["train/items"] == len({ex.text for ex in cls.train_ex})


def test_head_predictions_are_labels_with_log_probabilities(cls):
    import math

    labels = set(cls.prompt.labels)
    for p in cls.tuned.items:
        assert p.raw_text in labels
        assert math.isclose(sum(math.exp(v) for v in p.scores.values()), 1.0, rel_tol=1e-4)
        assert max(p.scores, key=p.scores.get) == p.raw_text
    correct = sum(p.raw_text == ex.label for p, ex in zip(cls.tuned.items, cls.eval_ex))
    assert correct >= 6, correct  # 12 rows, 4 labels: chance is 3


def test_adapter_folder_is_self_contained(cls, tmp_path):
    from ftlab_local_peft.backend import LocalPeftBackend

    adapter = Path(cls.result.model.uri)
    meta = json.loads((adapter / "ftlab_cls.json").read_text())
    assert meta == {"method": "lora_cls", "labels": list(cls.prompt.labels), "pooling": "last_context",
                    "split_layer": 0, "adapted_tokens": 8, "document_tokens": 0, "document_chunk_tokens": 512}
    fresh = LocalPeftBackend(cls.cfg, Recorder(tmp_path).ctx)  # recomputes every lower state
    again = fresh.predict(cls.result.model, cls.eval_ex, cls.prompt, Decoding(batch_size=3))
    assert [p.raw_text for p in again.items] == [p.raw_text for p in cls.tuned.items]
    for a, b in zip(again.items, cls.tuned.items):
        assert a.scores == pytest.approx(b.scores, abs=1e-4)


def test_wrong_label_set_is_refused(cls):
    from dataclasses import replace

    other = replace(cls.prompt, labels=tuple(reversed(cls.prompt.labels)))
    with pytest.raises(ValueError, match="was trained on labels"):
        cls.backend.predict(cls.result.model, cls.eval_ex[:2], other, Decoding())


@pytest.mark.parametrize("k,adapted", [(0, 3), (1, 3), (2, 1), (1, 0), (0, 0)])
def test_frozen_context_then_adapted_tokens_equals_the_full_model(tmp_path, k, adapted):
    """Without an adapter, context states + adapted tokens reproduce the full forward exactly."""
    import torch

    from ftlab_local_peft import encoding, frozen
    from ftlab_local_peft.backend import LocalPeftBackend

    cfg = make_cfg(model={"tiny": {"num_layers": 3}})
    b = LocalPeftBackend(cfg, Recorder(tmp_path).ctx)
    ex = make_examples(5)
    prompt = make_prompt(cfg)
    b._ensure_loaded(ex, prompt)
    prompts = [encoding.prompt_ids(b._tok, prompt, e.text) for e in ex]
    states = frozen.lower_states(b._base, prompts, k, adapted, b.pad_id, b.rt, batch_size=2)
    with torch.inference_mode():
        h, mask = frozen.upper_hidden(b._base, states, k, b.rt)  # batched, padded both ways
        for r, p in enumerate(prompts):
            full = b._base.model(input_ids=torch.tensor([p])).last_hidden_state[0]
            n = adapted or len(p)
            assert int(mask[r].sum()) == n
            assert torch.allclose(h[r, :n], full[-n:], atol=1e-5)
            assert torch.allclose(states[r].pooled, full.mean(0), atol=1e-5)
    assert len(b._base.model.layers) == 3  # the stack is restored


def test_packed_scoring_capture_matches_lower_pass(tmp_path):
    import torch

    from ftlab_local_peft import encoding, frozen, inference
    from ftlab_local_peft.backend import LocalPeftBackend
    from ftlab_local_peft.features import FeatureStore

    cfg = make_cfg(model={"tiny": {"num_layers": 3}})
    b = LocalPeftBackend(cfg, Recorder(tmp_path).ctx)
    ex = make_examples(6)
    prompt = make_prompt(cfg)
    b._ensure_loaded(ex, prompt)
    prompts = [encoding.prompt_ids(b._tok, prompt, e.text) for e in ex]
    conts = [encoding.label_ids(b._tok, lab, b.end_id) for lab in prompt.labels]
    store = FeatureStore()
    after_batch, remove = store.capture(b._base, 1, 4, prompts)
    inference.score_labels(b._base, prompts, list(prompt.labels), conts, b.pad_id, 4, b.rt,
                           on_cache=after_batch)
    remove()
    direct = frozen.lower_states(b._base, prompts, 1, 4, b.pad_id, b.rt, batch_size=3)
    for p, d in zip(prompts, direct):
        got = store.states.get(1, 4, p)
        for a, e in ((got.hidden, d.hidden), (got.keys, d.keys), (got.values, d.values), (got.pooled, d.pooled)):
            assert a.shape == e.shape and torch.allclose(a, e, atol=1e-5)


def test_document_means_are_chunkwise_means_of_the_final_states(tmp_path):
    """Batched over documents and chunks of different lengths = each chunk alone, averaged by tokens."""
    import torch

    from ftlab_local_peft import encoding, frozen
    from ftlab_local_peft.backend import LocalPeftBackend
    from ftlab_local_peft.features import FeatureStore

    cfg = make_cfg(model={"tiny": {"num_layers": 2}})
    b = LocalPeftBackend(cfg, Recorder(tmp_path).ctx)
    ex = make_examples(5)
    b._ensure_loaded(ex, make_prompt(cfg))
    docs = [encoding.document_ids(b._tok, e.text, 11) for e in ex] + [[]]
    assert max(len(d) for d in docs) == 11 and min(len(d) for d in docs[:-1]) > 4
    done = []
    got = frozen.document_means(b._base, docs, 4, b.pad_id, b.rt, batch_tokens=9, progress=done.append)
    assert sum(done) == len(docs)
    with torch.inference_mode():
        for d, row in zip(docs[:-1], got):
            parts = [b._base.model(input_ids=torch.tensor([d[s:s + 4]])).last_hidden_state[0]
                     for s in range(0, len(d), 4)]
            assert torch.allclose(row, torch.cat(parts).mean(0), atol=1e-5)
    assert torch.count_nonzero(got[-1]) == 0  # an empty input: zeros, not NaN
    store = FeatureStore()
    again = store.document_means(b._base, docs[:3], 4, b.pad_id, b.rt, False)
    assert len(store.documents) == 3 and torch.allclose(again, got[:3], atol=1e-6)
    with pytest.raises(ValueError, match="document_chunk_tokens"):
        frozen.document_means(b._base, docs, 0, b.pad_id, b.rt)


@pytest.mark.parametrize("head_init", ["zero", "probe"])
def test_document_head_trains_and_reloads(tmp_path, head_init):
    """backend.document_tokens: the head reads the document mean too; a new process predicts the same."""
    from ftlab_local_peft.backend import LocalPeftBackend

    # probe: a learning rate of ~0 leaves the head where the probe put it, which the loss shows
    lr = 1e-12 if head_init == "probe" else CLS_TRAIN["learning_rate"]
    cfg = make_cfg(train={**CLS_TRAIN, "max_steps": 30, "eval_loss": False, "learning_rate": lr},
                   backend={**CLS_BACKEND, "document_tokens": 10, "document_chunk_tokens": 4,
                            "head_init": head_init})
    (tmp_path / "out").mkdir()
    b = LocalPeftBackend(cfg, Recorder(tmp_path / "r1").ctx)
    prompt = make_prompt(cfg)
    train_ex, eval_ex = make_examples(24), make_examples(8, "eval", seed=1)
    res = b.train(TrainJob(train=train_ex, eval=eval_ex, prompt=prompt, out_dir=tmp_path / "out"))
    meta = json.loads((Path(res.model.uri) / "ftlab_cls.json").read_text())
    assert (meta["document_tokens"], meta["document_chunk_tokens"]) == (10, 4)
    head = dict(b._peft.named_parameters())
    width = [p.shape for n, p in head.items() if "ftlab_cls_head" in n and n.endswith("weight")][0][1]
    assert width == 3 * b._base.config.hidden_size  # last token, prompt mean, document mean
    assert (res.metrics["time/train_probe_s"] > 0) == (head_init == "probe")
    first = [h["train/loss"] for h in res.history if "train/loss" in h][0]
    if head_init == "probe":  # a fitted head from the start (a zero head's loss is ln 4 = 1.39)
        assert first < 0.7, first
    tuned = b.predict(res.model, eval_ex, prompt, Decoding(batch_size=4))
    fresh = LocalPeftBackend(cfg, Recorder(tmp_path / "r2").ctx)
    again = fresh.predict(res.model, eval_ex, prompt, Decoding(batch_size=3))
    for a, c in zip(again.items, tuned.items):
        assert a.raw_text == c.raw_text and a.scores == pytest.approx(c.scores, abs=1e-4)


def test_probe_is_scikit_learns_logistic_regression():
    """fit_probe minimises LogisticRegression(C)'s objective: same coefficients, class weights included."""
    import numpy as np
    import torch
    from sklearn import linear_model  # a dependency of ftlab itself: no skip

    from ftlab_local_peft.head import fit_probe
    from ftlab_local_peft.weighting import class_weights

    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=g)
    y = torch.tensor([0] * 30 + [1] * 20 + [2] * 10)
    x[:, 0] += y * 1.5
    targets = torch.nn.functional.one_hot(y, 3).float()
    weights = class_weights(targets, "balanced")
    w, b = fit_probe(x, targets, weights, c=0.5, max_iter=500)
    ref = linear_model.LogisticRegression(C=0.5, class_weight="balanced", max_iter=5000, tol=1e-10)
    ref.fit(x.numpy(), y.numpy())
    ours = torch.softmax(x @ w.T + b, -1).numpy()
    assert np.allclose(ours, ref.predict_proba(x.numpy()), atol=2e-3)
    assert np.allclose(w.numpy() - w.numpy().mean(0), ref.coef_ - ref.coef_.mean(0), atol=2e-3)


def test_class_weights():
    import torch

    from ftlab_local_peft.weighting import class_weights

    t = torch.tensor([[1.0, 0, 0]] * 6 + [[0, 1.0, 0]] * 2 + [[0, 0, 0]] * 0)
    assert class_weights(t, "none").tolist() == [1, 1, 1]
    bal = class_weights(t, "balanced")
    assert bal[:2].tolist() == pytest.approx([8 / (3 * 6), 8 / (3 * 2)])
    assert bal[2] == 1.0  # absent class
    assert class_weights(t, "sqrt")[:2].tolist() == pytest.approx([(8 / 18) ** 0.5, (8 / 6) ** 0.5])
    with pytest.raises(ValueError, match="class_weighting"):
        class_weights(t, "inverse")


def test_balanced_weights_change_the_generative_loss():
    from types import SimpleNamespace

    from ftlab_local_peft.weighting import example_weights

    rows = [Example(id=str(i), text=str(i), label=lab) for i, lab in enumerate("AAAAAAB")]
    w = example_weights(rows, ["A", "B"], "balanced")
    assert sum(w) == pytest.approx(len(rows))
    assert w[-1] == pytest.approx(6 * w[0])
    assert example_weights(rows, ["A", "B"], "none") == [1.0] * 7


def test_soft_items_merge_rows_of_one_text():
    from types import SimpleNamespace

    from ftlab_local_peft.methods.lora_cls import training_items

    rows = (Example("0", "same", "A", ("A", "B")), Example("1", "same", "B", ("A", "B")),
            Example("2", "other", "C"))
    soft = training_items(SimpleNamespace(train=rows), ["A", "B", "C"], "soft")
    assert [(r, t.tolist()) for r, t in soft] == [(0, [0.5, 0.5, 0.0]), (2, [0.0, 0.0, 1.0])]
    plain = training_items(SimpleNamespace(train=rows), ["A", "B", "C"], "rows")
    assert [t.tolist() for _, t in plain] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_middle_truncation_keeps_both_ends(tmp_path):
    from ftlab.prompt import MIDDLE_MARK
    from ftlab_local_peft import encoding
    from ftlab_local_peft.backend import LocalPeftBackend

    cfg = make_cfg()
    b = LocalPeftBackend(cfg, Recorder(tmp_path).ctx)
    text = " ".join(f"w{i}" for i in range(200))
    b._ensure_loaded((Example("x", text, "Cardiology"),), make_prompt(cfg))
    tok = b._tok
    kept = encoding.truncate_text(tok, text, 40, "middle", 10)
    head, tail = kept.split(MIDDLE_MARK)
    assert text.startswith(head) and text.endswith(tail) and head and tail
    assert len(tok(tail, add_special_tokens=False)["input_ids"]) <= 10
    assert len(tok(head, add_special_tokens=False)["input_ids"]) <= 30
    assert "w199" in kept and "w0" in kept and "w100" not in kept
    assert encoding.truncate_text(tok, "short", 40, "middle", 10) == "short"


def lora_b_still_zero(adapter_dir) -> list[str]:
    """The adapter's ``lora_B`` tensors that are exactly zero. peft initialises every ``lora_B`` to
    zero (the adapter starts as a no-op), so a tensor still zero after training never moved."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))
    b = {k: v for k, v in weights.items() if "lora_B" in k}
    assert b, f"no lora_B tensors in {adapter_dir}: not a LoRA adapter"
    return sorted(k for k, v in b.items() if not v.abs().max() > 0)


def test_lora_cls_moves_every_lora_weight_not_only_the_head(cls):
    """The head alone can lower the loss; the saved adapter shows the LoRA matrices trained too
    (train_layers=0: every layer's q_proj and v_proj)."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(cls.result.model.uri) / "adapter_model.safetensors"))
    assert sum("lora_B" in k for k in weights) == 2 * cls.cfg.model.tiny.num_layers
    assert lora_b_still_zero(cls.result.model.uri) == []


def test_the_lora_check_fails_for_an_adapter_that_trained_nothing(tmp_path):
    """What a method that trains only its head (or nothing) saves: every lora_B still zero."""
    from peft import LoraConfig, get_peft_model

    from ftlab_local_peft import loading

    model = loading.build_tiny_model(make_cfg().model.tiny, 400)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(tmp_path / "untrained")
    assert len(lora_b_still_zero(tmp_path / "untrained")) == 2 * make_cfg().model.tiny.num_layers
