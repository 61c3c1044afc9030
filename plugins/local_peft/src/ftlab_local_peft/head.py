"""The classification head of ``train.method=lora_cls``: what it reads, how it starts, its loss.

The head is a linear layer attached to the base model as ``ftlab_cls_head`` (saved with the adapter
through peft's ``modules_to_save``). It reads :func:`head_features`: the adapted tokens pooled
(``backend.pooling``) and optionally the frozen document means, each part layer-normed. LP-FT starts
it from a converged probe (:func:`fit_probe`).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ftlab_local_peft.frozen import FrozenState, upper_hidden
from ftlab_local_peft.modeling import unwrap

HEAD = "ftlab_cls_head"
POOLINGS = ("last", "mean", "last_mean", "last_context")


def head_features(model, states: Sequence[FrozenState], k: int, pooling: str, rt,
                  docs: torch.Tensor | None = None) -> torch.Tensor:
    """``[b, F]`` float32: what the head reads, each part layer-normed without parameters.

    The parts: the pooled adapted tokens (``pooling``), the frozen prompt mean (last_context) and
    ``docs`` (the rows' document means, :func:`~ftlab_local_peft.frozen.document_means`)."""
    h, suf = upper_hidden(model, states, k, rt)
    b, dev = h.shape[0], h.device
    last = h[torch.arange(b, device=dev), suf.sum(1) - 1]
    if pooling == "last":
        parts = [last]
    elif pooling == "last_context":
        parts = [last, torch.stack([st.pooled for st in states]).to(dev)]
    else:
        mean = (h * suf[..., None]).sum(1) / suf.sum(1, keepdim=True)
        parts = [mean] if pooling == "mean" else [last, mean]
    if docs is not None:
        parts.append(docs.to(dev))
    # parameter-free layer norm per part: the final states' scale is large and differs between the
    # parts, and a new zero-initialised head with a high learning rate diverged on the raw values
    return torch.cat([torch.nn.functional.layer_norm(x, x.shape[-1:]) for x in parts], dim=-1)


def upper_logits(model, states: Sequence[FrozenState], k: int, pooling: str, rt,
                 docs: torch.Tensor | None = None) -> torch.Tensor:
    """``[b, n_labels]`` head logits (float32) over :func:`head_features`."""
    return head_of(model)(head_features(model, states, k, pooling, rt, docs))


def fit_probe(x: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, c: float,
              max_iter: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear probe: multinomial logistic regression on fixed features, fitted to convergence.

    Minimises ``sum_i w . t_i . -log softmax(W x_i + b) + ||W||^2 / (2c)``: scikit-learn's
    ``LogisticRegression(C=c)`` objective, with class-weighted (soft) targets, solved by L-BFGS.
    Returns ``(W [C, F], b [C])``. Used to start the head where a converged probe ends, so that
    fine-tuning (LP-FT) adapts the model around a good head instead of training both from zero.
    """
    x = x.detach().float().clone()  # features may come from inference mode
    w = torch.zeros((targets.shape[1], x.shape[1]), requires_grad=True)
    b = torch.zeros(targets.shape[1], requires_grad=True)
    tw = (targets * weights).detach()
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -(tw * torch.log_softmax(x @ w.T + b, dim=-1)).sum() + (w * w).sum() / (2 * c)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def head_of(model):
    """The attached head, through a peft wrapper or not."""
    return getattr(unwrap(model), HEAD)


def attach_head(base, n_labels: int, pooling: str, document: bool = False) -> None:
    """Give ``base`` a zero-initialised ``ftlab_cls_head`` (zero: the first step starts from uniform)."""
    if pooling not in POOLINGS:
        raise ValueError(f"backend.pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    parts = (2 if pooling in ("last_mean", "last_context") else 1) + (1 if document else 0)
    width = base.config.hidden_size * parts
    head = torch.nn.Linear(width, n_labels)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    setattr(base, HEAD, head.to(next(base.parameters()).device))


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy against target distributions (one-hot or spread over labels)."""
    logp = torch.log_softmax(logits, dim=-1)
    w = targets * weights.to(logits.device)
    return -(w * logp).sum() / w.sum().clamp(min=1e-9)
