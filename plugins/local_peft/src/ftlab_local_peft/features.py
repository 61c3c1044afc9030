"""Frozen features kept for this process: one store, one public API, for any method that wants them.

What the frozen base model computes does not depend on training, so the backend computes it once
per process and every method, every fold of a cross-validation and the tuned evaluation reuse it:

- **prompt context states** (:class:`~ftlab_local_peft.frozen.FrozenState`, per layer split,
  adapted-token count and prompt ids): the base evaluation's scoring pass leaves them here
  (:meth:`FeatureStore.capture`) for the tuned one; a training job that says more trainings on the
  same rows follow (``TrainJob.repeat``, e.g. cross-validation folds) keeps its rows' states too;
- **document means** (per chunk length and token ids): the frozen model's final states averaged
  over the input's first N tokens, small (one vector per text), always kept.

With ``backend.share_features`` (default) the store belongs to the *process* and the model (its
config, dtype and device), not to one backend: the jobs of an in-process multirun (Hydra's basic
launcher: a sweep, an ablation, a search over learning rates) reuse one another's frozen passes.
Values reused from another job's batches can differ from a fresh computation by bf16 rounding
(~1e-3 in a logit); a single run's numbers never depend on it.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ftlab_local_peft.frozen import FrozenState, HiddenAt, document_means, extract_state, lower_states
from ftlab_local_peft.modeling import num_layers


class StateCache:
    """:class:`FrozenState` per ``(k, adapted tokens, prompt ids)``, in the compute dtype.

    Holds states of at most ``max_splits`` distinct ``(k, adapted)`` pairs: a new pair drops the
    oldest (a search over adapted-token counts would otherwise keep gigabytes per value)."""

    def __init__(self, max_splits: int = 2):
        self._d: dict[tuple, FrozenState] = {}
        self.max_splits = max_splits

    def get(self, k: int, adapted: int, ids: Sequence[int]):
        return self._d.get((k, adapted, tuple(ids)))

    def put(self, k: int, adapted: int, ids: Sequence[int], state: FrozenState) -> None:
        splits = list(dict.fromkeys(key[:2] for key in self._d))
        if (k, adapted) not in splits and len(splits) >= self.max_splits:
            old = splits[0]
            self._d = {key: v for key, v in self._d.items() if key[:2] != old}
        self._d[(k, adapted, tuple(ids))] = state

    def pop(self, k: int, adapted: int, ids: Sequence[int]) -> None:
        self._d.pop((k, adapted, tuple(ids)), None)

    def __len__(self) -> int:
        return len(self._d)


class _ReadOnly:
    """A cache view that serves hits and keeps nothing new."""

    def __init__(self, cache: StateCache):
        self._c = cache

    def get(self, k, adapted, ids):
        return self._c.get(k, adapted, ids)

    def put(self, *_args) -> None:
        return None


class FeatureStore:
    """The frozen features of this process (see the module docstring)."""

    def __init__(self):
        self.states = StateCache()
        self.documents: dict[tuple, torch.Tensor] = {}

    def prompt_states(self, model, prompts: Sequence[Sequence[int]], k: int, adapted: int, pad_id: int, rt,
                      batch_size: int, *, keep: bool, progress=None) -> list[FrozenState]:
        """Each prompt's frozen state: kept ones reused, the rest computed (and kept when ``keep``)."""
        cache = self.states if keep else _ReadOnly(self.states)
        return lower_states(model, prompts, k, adapted, pad_id, rt, batch_size, cache, progress)

    def release(self, k: int, adapted: int, prompts: Sequence[Sequence[int]]) -> None:
        """Forget these prompts' states (used once: free the memory)."""
        for p in prompts:
            self.states.pop(k, adapted, p)

    def capture(self, model, k: int, adapted: int, prompts: Sequence[Sequence[int]]):
        """Keep each prompt's frozen state during a packed scoring pass over left-padded prompts.

        Returns ``(after_batch, remove)``: the pass hands its cache to ``after_batch(idx, prefix,
        width, cache)``: the cache holds the shared ``prefix`` (an ``inference.Prefix`` or None),
        then the rest of each prompt left-padded to ``width`` columns (the only columns the hooks see).
        """
        grab, final = HiddenAt(model, k), HiddenAt(model, -1)
        n_layers = num_layers(model)

        def after_batch(idx, prefix, width, kv_cache):
            for row, i in enumerate(idx):
                self.states.put(k, adapted, prompts[i],
                                extract_state(grab.hidden, final.hidden, kv_cache, row, len(prompts[i]), prefix,
                                              width, k, adapted, n_layers))

        def remove():
            grab.remove()
            final.remove()

        return after_batch, remove

    def document_means(self, model, docs: Sequence[Sequence[int]], chunk: int, pad_id: int, rt,
                       progress: bool, layers: Sequence[int] = ()) -> torch.Tensor:
        """``[n, H * blocks]`` document means (:func:`~ftlab_local_peft.frozen.document_means`), computing
        only those not kept yet (keyed by chunk length, layers and token ids)."""
        from tqdm.auto import tqdm

        keys = [(chunk, tuple(layers), tuple(d)) for d in docs]
        todo = list(dict.fromkeys(k for k in keys if k not in self.documents))
        if todo:
            with tqdm(total=len(todo), desc="document means (once)", unit="ex", disable=not progress,
                      dynamic_ncols=True) as bar:
                got = document_means(model, [list(k[2]) for k in todo], chunk, pad_id, rt, progress=bar.update,
                                     layers=layers)
            self.documents.update(zip(todo, got))
        return torch.stack([self.documents[k] for k in keys]) if keys else torch.zeros((0, 0))


_SHARED: dict[str, FeatureStore] = {}


def store_for(model_cfg, backend_cfg, rt) -> FeatureStore:
    """The process's store for this model, dtype and device (``backend.share_features``), else a new one.

    A ``tiny_random`` model is never shared: its tokenizer, and so its weights' shape, come from
    each run's own texts."""
    import dataclasses
    import json

    source = getattr(model_cfg.source, "value", model_cfg.source)
    if not getattr(backend_cfg, "share_features", True) or source == "tiny_random":
        return FeatureStore()
    key = json.dumps({"model": dataclasses.asdict(model_cfg), "device": str(rt.device), "dtype": rt.dtype_name},
                     sort_keys=True, default=str)
    return _SHARED.setdefault(key, FeatureStore())
