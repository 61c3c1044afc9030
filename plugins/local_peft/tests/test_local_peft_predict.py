"""Prediction and encoding: label scoring vs a naive forward, generation, masking, truncation."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from local_peft_helpers import LABELS, make_cfg, make_examples, make_prompt

from ftlab.contract import Decoding, Example
from ftlab_local_peft import encoding, inference

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

LONG = " ".join(["patient with chest pain and a knee fracture"] * 40)


@pytest.mark.parametrize("kind", ["base", "tuned"])
def test_score_labels_matches_naive_forward(trained, kind):
    b = trained.backend
    ref = b.base_model() if kind == "base" else trained.result.model
    examples = trained.eval_ex[:5] + (Example(id="long", text=LONG, label="Cardiology"),)
    preds = b.predict(ref, examples, trained.prompt, Decoding(batch_size=3))  # mixed prompt lengths
    assert [p.id for p in preds.items] == [ex.id for ex in examples]
    net, ctx = b._model_for(ref)
    conts = [encoding.label_ids(b._tok, lab, b.end_id) for lab in LABELS]
    with ctx, torch.inference_mode():
        for ex, p in zip(examples, preds.items):
            pids = encoding.prompt_ids(b._tok, trained.prompt, ex.text)
            naive = inference.naive_label_scores(net, pids, conts, b.rt)
            assert [p.scores[lab] for lab in LABELS] == pytest.approx(naive, abs=2e-4)
            assert p.raw_text == max(p.scores, key=p.scores.get)
            assert p.raw_text in LABELS and p.label == ""
            assert p.prompt_tokens == len(pids) and p.latency_s > 0


def test_generate_returns_strings(trained):
    preds = trained.backend.predict(trained.result.model, trained.eval_ex, trained.prompt,
                                    Decoding(mode="generate", max_new_tokens=4, batch_size=5))
    assert [p.id for p in preds.items] == [ex.id for ex in trained.eval_ex]
    for p in preds.items:
        assert isinstance(p.raw_text, str) and "<|im_end|>" not in p.raw_text
        assert 1 <= p.output_tokens <= 4
    assert sum(p.raw_text in LABELS for p in preds.items) >= 6  # tuned: mostly label + end token
    assert preds.metrics["time/predict_s"] > 0


def test_generate_sampling_is_seeded(trained):
    dec = Decoding(mode="generate", max_new_tokens=4, temperature=1.0, top_p=0.9)
    a = trained.backend.predict(trained.backend.base_model(), trained.eval_ex[:4], trained.prompt, dec)
    b = trained.backend.predict(trained.backend.base_model(), trained.eval_ex[:4], trained.prompt, dec)
    assert [p.raw_text for p in a.items] == [p.raw_text for p in b.items]


def test_loss_mask_covers_label_tokens_only(trained):
    tok, end = trained.backend._tok, trained.backend.end_id
    ex = trained.train_ex[0]
    f = encoding.make_feature(tok, trained.prompt, ex.text, ex.label, end)
    n_prompt = len(encoding.prompt_ids(tok, trained.prompt, ex.text))
    target = tok(ex.label, add_special_tokens=False)["input_ids"] + [end]
    assert list(f.labels[:n_prompt]) == [-100] * n_prompt
    assert list(f.labels[n_prompt:]) == target == list(f.input_ids[n_prompt:])
    short = encoding.make_feature(tok, trained.prompt, "rash", "Dermatology", end)
    ids, mask, labels = encoding.collate([f, short], pad_id=trained.backend.pad_id)
    assert labels.shape == ids.shape == mask.shape
    n = len(short)
    assert labels[1, n:].eq(-100).all() and mask[1, n:].eq(0).all()  # right padding ignored
    assert (labels != -100).sum() == len(target) + len(tok("Dermatology", add_special_tokens=False)
                                                      ["input_ids"]) + 1
    assert tok.decode(target) == ex.label + "<|im_end|>"


@pytest.mark.parametrize("side", ["right", "left"])
def test_truncation_respects_max_input_tokens(trained, side):
    tok = trained.backend._tok
    kept = encoding.truncate_text(tok, LONG, 20, side)
    assert len(tok(kept, add_special_tokens=False)["input_ids"]) <= 20
    assert (LONG.startswith(kept) if side == "right" else LONG.endswith(kept))
    assert encoding.truncate_text(tok, LONG, 0, side) == LONG
    assert encoding.truncate_text(tok, "short text", 20, side) == "short text"


def test_prompt_uses_truncated_input_and_chat_template(trained):
    from dataclasses import replace

    tok = trained.backend._tok
    p20 = replace(trained.prompt, max_input_tokens=20)
    text = encoding.prompt_text(tok, p20, LONG)
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_start|>assistant\n")
    assert encoding.truncate_text(tok, LONG, 20) in text and LONG not in text
    n_long = len(encoding.prompt_ids(tok, p20, LONG))
    n_cut = len(encoding.prompt_ids(tok, p20, encoding.truncate_text(tok, LONG, 20)))
    assert n_long == n_cut
    with_system = encoding.prompt_text(tok, replace(p20, system="Be brief."), "x")
    assert with_system.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    plain = encoding.prompt_text(tok, replace(p20, use_chat_template=False), "x")
    assert "<|im_start|>" not in plain


def test_tiny_model_is_deterministic(tmp_path):
    from local_peft_helpers import Recorder

    from ftlab_local_peft.backend import LocalPeftBackend

    cfg = make_cfg()
    ex = make_examples(6)
    outs = []
    for i in range(2):
        (tmp_path / str(i)).mkdir()
        b = LocalPeftBackend(cfg, Recorder(tmp_path / str(i)).ctx)
        outs.append(b.predict(b.base_model(), ex, make_prompt(cfg), Decoding()))
    assert [p.scores for p in outs[0].items] == [p.scores for p in outs[1].items]


def test_plugin_module_does_not_import_torch():
    code = ("import sys, ftlab_local_peft.plugin as p; p.LocalPeftConfig(); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
