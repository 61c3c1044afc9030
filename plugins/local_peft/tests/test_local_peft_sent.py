"""What each backend sent is recorded, and a host character budget makes local_peft and bqml send the
same instruction text (docs/backends/README.md, "What the model is sent").

local_peft answers on the tiny model, bqml through the real BigQuery client on the fake server (it
reads the ``prompt`` column back from ML.GENERATE_TEXT, so the record is what BigQuery used).
"""

from __future__ import annotations

import json

import pytest

from local_peft_helpers import LABELS, make_cfg, make_examples, make_prompt

BUDGET = 60  # characters of transcript: most generated texts are longer, a few are not


def _local(tmp_path, examples, prompt_over):
    """``(prompt, predictions, tokenizer)`` of the tiny base model."""
    from ftlab.contract import Decoding, RunContext
    from ftlab_local_peft.backend import LocalPeftBackend

    cfg = make_cfg(prompt=prompt_over)
    backend = LocalPeftBackend(cfg, RunContext(tmp_path))
    prompt = make_prompt(cfg)
    items = backend.predict(backend.base_model(), examples, prompt, Decoding(batch_size=4)).items
    return prompt, items, backend._tok


def _bqml(tmp_path, examples, prompt):
    from ftlab.contract import Decoding, RunContext
    from ftlab_bqml.backend import BqmlBackend
    from ftlab_bqml.fake import FakeBigQuery
    from ftlab_bqml.testing import fast_backend_cfg
    from ftlab.config import DataConfig, RunConfig

    with FakeBigQuery() as fake:
        cfg = RunConfig(backend=fast_backend_cfg(fake.url), data=DataConfig(labels=list(LABELS)))
        backend = BqmlBackend(cfg, RunContext(tmp_path))
        return backend.predict(backend.base_model(), examples, prompt, Decoding(mode="generate")).items


def test_local_peft_records_the_chat_wrapped_token_cut_prompt(tmp_path):
    from ftlab_local_peft.encoding import text_ids

    examples = make_examples(8, "eval", seed=3)
    prompt, items, tok = _local(tmp_path, examples, {"max_input_tokens": 4})
    for ex, p in zip(examples, items):
        assert p.prompt.endswith("<|im_start|>assistant\n") and "<|im_start|>user" in p.prompt
        assert p.prompt_tokens == len(text_ids(tok, prompt, p.prompt))  # the text is what was scored
        n = len(tok(ex.text, add_special_tokens=False)["input_ids"])
        assert p.truncation == {"tokens": {"limit": 4, "input": n, "kept": 4, "side": "right"}}, ex.id
        words = ex.text.split()
        assert words[0] in p.prompt and " ".join(words) not in p.prompt  # the head kept, the rest cut


def test_a_host_character_budget_makes_both_backends_send_the_same_text(tmp_path):
    from ftlab.contract import prompt_rows

    examples = make_examples(10, "eval", seed=4)
    over = {"max_input_tokens": 0, "max_input_chars": BUDGET, "use_chat_template": False}
    prompt, local, _ = _local(tmp_path / "l", examples, over)
    remote = _bqml(tmp_path / "b", examples, prompt)
    cut = [ex for ex in examples if len(ex.text) > BUDGET]
    assert 0 < len(cut) < len(examples)
    for ex, lp, bp in zip(examples, local, remote):
        assert bp.prompt == prompt.render(ex.text) and lp.prompt == bp.prompt + "\n", ex.id
        assert lp.prompt_sha256 != bp.prompt_sha256  # the newline local_peft adds is recorded, not hidden
        want = {"chars": {"limit": BUDGET, "input": len(ex.text), "kept": BUDGET, "side": "right"}} \
            if len(ex.text) > BUDGET else None
        assert lp.truncation == want and bp.truncation == want, ex.id
    rows = prompt_rows(remote)
    assert [r["ids"] for r in rows] == [[ex.id] for ex in examples]
    assert json.loads(json.dumps(rows)) == rows
