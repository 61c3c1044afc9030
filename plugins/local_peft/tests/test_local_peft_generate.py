"""Generation on the tiny model: greedy determinism, batching, stop strings, seeded sampling, SFT on references."""

from __future__ import annotations

import dataclasses
import random

import pytest
from local_peft_helpers import Recorder, make_cfg, make_prompt

from ftlab.contract import Decoding, Example, TrainJob

WORDS = ["chest", "pain", "knee", "fracture", "rash", "skin", "cough", "fever", "mri", "scan"]


def _rows(n: int, split: str = "train", seed: int = 0) -> tuple[Example, ...]:
    """Inputs whose reference is 'report of <first word>': something SFT can learn in a few steps."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
        out.append(Example(f"{split}-{i}", " ".join(words), "", references=("report of " + words[0],)))
    return tuple(out)


def _backend(tmp_path, **train):
    from ftlab_local_peft.backend import LocalPeftBackend

    cfg = make_cfg(train={"method": "lora", "max_steps": 30, "learning_rate": 1e-2, **train},
                   prompt={"template": "Summarize: {text}", "max_input_tokens": 32})
    cfg.data.labels = []
    return LocalPeftBackend(cfg, Recorder(tmp_path).ctx), make_prompt(cfg)


def test_greedy_generation_is_deterministic_and_batch_independent(tmp_path):
    b, prompt = _backend(tmp_path)
    rows = _rows(10)
    d = Decoding(mode="generate", max_new_tokens=8, batch_size=4)
    first = b.predict(b.base_model(), rows, prompt, d)
    again = b.predict(b.base_model(), rows, prompt, d)
    one_by_one = b.predict(b.base_model(), rows, prompt, dataclasses.replace(d, batch_size=1))
    texts = [p.raw_text for p in first.items]
    assert texts == [p.raw_text for p in again.items] == [p.raw_text for p in one_by_one.items]
    assert all(0 < p.output_tokens <= 8 for p in first.items)


@pytest.mark.parametrize("stop", [(), ("e",)])
def test_batched_generation_matches_a_plain_per_row_generate_loop(tmp_path, stop):
    """ftlab's left-padded batches give, row for row, what one ``model.generate`` per prompt gives
    (the baseline of benchmarks/bench_generate.py), with and without a stop string."""
    from ftlab_local_peft import encoding, inference

    b, prompt = _backend(tmp_path)
    rows = _rows(9)
    d = Decoding(mode="generate", max_new_tokens=10, batch_size=4, stop=stop)
    batched = b.predict(b.base_model(), rows, prompt, d)
    net, _ = b._model_for(b.base_model())
    ids = [encoding.text_ids(b._tok, prompt, encoding.sent_prompt(b._tok, prompt, ex.text)[0]) for ex in rows]
    assert len(set(map(len, ids))) > 1  # the batches really are padded
    plain = [inference.finish_text(b._tok, r, b.end_id, b.pad_id, stop)
             for r in inference.per_row_generate(net, b._tok, ids, b.end_id, b.pad_id, d, b.rt)]
    assert [(p.raw_text, p.output_tokens) for p in batched.items] == plain


def test_cast_once_restores_the_frozen_flags_and_changes_no_output(tmp_path):
    """bf16 generation flags frozen weights for autocast's cast cache during the call, and only then."""
    import dataclasses as dc

    import torch

    from ftlab_local_peft import inference

    b, prompt = _backend(tmp_path)
    rows = _rows(5)
    d = Decoding(mode="generate", max_new_tokens=6, batch_size=3)
    b.rt = dc.replace(b.rt, bf16=True)
    b.predict(b.base_model(), rows[:1], prompt, d)  # loads the model
    net, _ = b._model_for(b.base_model())
    for p in net.parameters():
        p.requires_grad_(False)
    net.model.layers[0].mlp.up_proj.weight.requires_grad_(True)  # a mix, as a peft model has
    before = [p.requires_grad for p in net.parameters()]
    with inference.cast_once(net, True):
        assert all(p.requires_grad for p in net.parameters() if p.is_floating_point())
    assert [p.requires_grad for p in net.parameters()] == before
    frozen = [p.raw_text for p in b.predict(b.base_model(), rows, prompt, d).items]
    assert [p.requires_grad for p in net.parameters()] == before
    with torch.no_grad():
        for p in net.parameters():
            p.requires_grad_(True)
    assert frozen == [p.raw_text for p in b.predict(b.base_model(), rows, prompt, d).items]


def test_stop_strings_cut_the_answer(tmp_path):
    b, prompt = _backend(tmp_path)
    rows = _rows(6)
    free = b.predict(b.base_model(), rows, prompt, Decoding(mode="generate", max_new_tokens=12, batch_size=3))
    longest = max((p.raw_text for p in free.items), key=len)
    assert len(longest) >= 6, [p.raw_text for p in free.items]
    stop = longest[3:5]  # a piece of what the model writes (the tiny model's text is not words)
    cut = b.predict(b.base_model(), rows, prompt,
                    Decoding(mode="generate", max_new_tokens=12, batch_size=3, stop=(stop,)))
    for f, c in zip(free.items, cut.items):
        assert stop not in c.raw_text
        if stop in f.raw_text:
            assert c.raw_text == f.raw_text[:f.raw_text.find(stop)].strip()
    assert sum(stop in f.raw_text for f in free.items) >= 1


def test_sampling_is_seeded(tmp_path):
    b, prompt = _backend(tmp_path)
    rows = _rows(6)
    d = Decoding(mode="generate", max_new_tokens=10, batch_size=3, temperature=1.0, top_p=0.95, seed=7)
    a = [p.raw_text for p in b.predict(b.base_model(), rows, prompt, d).items]
    assert a == [p.raw_text for p in b.predict(b.base_model(), rows, prompt, d).items]
    other = [p.raw_text for p in b.predict(b.base_model(), rows, prompt, dataclasses.replace(d, seed=8)).items]
    assert other != a


def test_sft_learns_the_references_and_moves_the_lora_weights(tmp_path):
    import torch
    from safetensors.torch import load_file

    from ftlab.metrics.text import rouge_scores

    b, prompt = _backend(tmp_path, max_steps=80, batch_size=4, logging_steps=10, learning_rate=2e-2,
                         lora={"r": 8, "alpha": 16, "dropout": 0.0,
                               "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]})
    train, held = _rows(48), _rows(8, "eval", seed=1)
    d = Decoding(mode="generate", max_new_tokens=6, batch_size=4)
    base = b.predict(b.base_model(), held, prompt, d)
    out = tmp_path / "out"
    out.mkdir()
    trained = b.train(TrainJob(train=train, eval=held, prompt=prompt, out_dir=out))
    losses = [h["train/loss"] for h in trained.history if "train/loss" in h]
    assert losses[-1] < 0.5 * losses[0], losses
    weights = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and all(torch.count_nonzero(t) > 0 for t in lora_b)  # peft starts every lora_B at zero
    tuned = b.predict(trained.model, held, prompt, d)

    def rouge(preds):
        return sum(rouge_scores(p.raw_text, ex.references)["rougeL_f1"] for p, ex in zip(preds.items, held)) / len(held)

    assert rouge(tuned) > rouge(base) + 0.2, ([p.raw_text for p in base.items], [p.raw_text for p in tuned.items])
    # eval.decoding.min_new_tokens: the tuned model ends "report of <word>" early; a minimum holds the
    # end token back until then. num_beams: beam search, deterministic, one answer per row.
    long = dataclasses.replace(d, max_new_tokens=12)
    free = b.predict(trained.model, held, prompt, long)
    floor = b.predict(trained.model, held, prompt, dataclasses.replace(long, min_new_tokens=9))
    assert min(p.output_tokens for p in free.items) < 9, [p.output_tokens for p in free.items]
    assert all(p.output_tokens >= 9 for p in floor.items), [p.output_tokens for p in floor.items]
    beams = dataclasses.replace(long, num_beams=3, length_penalty=1.5)
    first = [p.raw_text for p in b.predict(trained.model, held, prompt, beams).items]
    assert len(first) == len(held) and all(first)
    assert first == [p.raw_text for p in b.predict(trained.model, held, prompt, beams).items]
