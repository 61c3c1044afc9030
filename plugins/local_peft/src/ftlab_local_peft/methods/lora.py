"""``train.method=lora``: peft LoRA on the causal LM, loss on the answer tokens only.

Each training item is the prompt the model is evaluated with followed by its target (the label's
tokens and the end token, :mod:`~ftlab_local_peft.encoding`); the cross-entropy covers the target
tokens, never the prompt, weighted per row by ``train.class_weighting``. ``backend.train_layers``
limits LoRA to the top layers (a shorter backward pass).
"""

from __future__ import annotations

import torch

from ftlab_local_peft.device import autocast
from ftlab_local_peft.encoding import IGNORE_INDEX, collate, make_features
from ftlab_local_peft.loading import enum_value
from ftlab_local_peft.loop import Plan
from ftlab_local_peft.modeling import num_layers, split_layer, unwrap
from ftlab_local_peft.weighting import example_weights

NAME = "lora"


def lm_loss(model, feats, weights, pad_id, rt) -> tuple[torch.Tensor, int]:
    """Target-token cross-entropy per example (mean over its target tokens), weighted mean over rows.

    The vocabulary projection runs only at the positions that predict a target token (a few per
    example), not at every prompt position as a causal LM's own loss does.
    """
    ids, mask, labels = (t.to(rt.device) for t in collate(feats, pad_id))
    lm = unwrap(model)
    tgt = labels[:, 1:]
    sel = tgt != IGNORE_INDEX
    with autocast(rt.device, rt.amp):
        h = lm.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1][sel]
        logits = lm.lm_head(h)
    tok = torch.nn.functional.cross_entropy(logits.float(), tgt[sel], reduction="none")
    rows = sel.nonzero()[:, 0]
    per_ex = torch.zeros(len(feats), dtype=tok.dtype, device=tok.device).index_add(0, rows, tok) \
        / sel.sum(1).clamp(min=1)
    w = torch.tensor(weights, dtype=per_ex.dtype, device=per_ex.device)
    return (per_ex * w).sum() / w.sum(), int(mask.sum())


def prepare(session, job) -> Plan:
    """A fresh LoRA adapter on ``session.base`` and the target-token loss over the training rows."""
    from peft import LoraConfig, get_peft_model

    tc, tok, rt, pad_id = session.cfg.train, session.tokenizer, session.rt, session.pad_id
    # backend.train_layers=N: LoRA on the top N layers only; nothing below them needs a gradient, so
    # autograd records no graph there and the backward pass stops at the first adapted layer
    k = split_layer(session.base, session.cfg.backend.train_layers)
    top = {"layers_to_transform": list(range(k, num_layers(session.base)))} if k else {}
    model = get_peft_model(session.base, LoraConfig(
        task_type="CAUSAL_LM", r=tc.lora.r, lora_alpha=tc.lora.alpha, lora_dropout=tc.lora.dropout,
        target_modules=list(tc.lora.target_modules), **top))
    feats = make_features(tok, job.prompt, job.train, session.end_id)
    weights = example_weights(job.train, job.prompt.labels, enum_value(tc.class_weighting))
    eval_feats = make_features(tok, job.prompt, job.eval, session.end_id) if tc.eval_loss else []

    def loss(idx):
        return lm_loss(model, [feats[i] for i in idx], [weights[i] for i in idx], pad_id, rt)

    def eval_loss():
        bs = tc.batch_size
        with rt.inference():
            parts = [lm_loss(model, eval_feats[i:i + bs], [1.0] * len(eval_feats[i:i + bs]), pad_id, rt)[0]
                     for i in range(0, len(eval_feats), bs)]
        return float(torch.stack(parts).mean())

    params = [p for p in model.parameters() if p.requires_grad]
    return Plan(model, [len(f) for f in feats], loss, params, eval_loss if eval_feats else None,
                weights=weights)
