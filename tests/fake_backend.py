"""A deterministic backend for host tests: no model, answers from word statistics.

``base`` answers with the label whose words appear most often in the text (or junk for every
7th row, to exercise the unparseable bucket); ``tuned`` learns word→label counts from the
training rows. It satisfies ftlab.contract.Backend and is registered by a fixture.
"""

from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ftlab import hookimpl
from ftlab.config import BackendConfig
from ftlab.contract import ModelRef, Prediction, Predictions, TrainedModel

WORD = re.compile(r"[a-z]{4,}")


@dataclass
class FakeConfig(BackendConfig):
    """Options of the fake test backend."""

    name: str = "fake"
    """Backend name."""
    junk_every: int = 7
    """Base model answers junk for every N-th row (0 = never)."""
    fail_predict: bool = False
    """Raise during predict (tests failure handling)."""


class FakeBackend:
    def __init__(self, cfg, ctx) -> None:
        self.cfg, self.ctx = cfg, ctx

    def base_model(self) -> ModelRef:
        return ModelRef(backend="fake", kind="base")

    def train(self, job) -> TrainedModel:
        counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for ex in job.train:
            for w in set(WORD.findall(ex.text.lower())):
                counts[w][ex.label] += 1
        path = Path(job.out_dir) / "fake_model.json"
        path.write_text(json.dumps({w: dict(c) for w, c in counts.items()}))
        history = tuple({"step": s, "loss": 2.0 / s} for s in range(1, 4))
        for h in history:
            self.ctx.log_metrics({"train/loss": h["loss"]}, h["step"])
        return TrainedModel(ModelRef("fake", "tuned", str(path)), history,
                            {"train/trainable_params": 1.0}, (str(path),))

    def predict(self, model, examples, prompt, decoding) -> Predictions:
        if self.cfg.backend.fail_predict:
            raise RuntimeError("fake backend asked to fail")
        items = []
        table = json.loads(Path(model.uri).read_text()) if model.kind == "tuned" else None
        for i, ex in enumerate(examples):
            words = WORD.findall(ex.text.lower())
            if table is not None:
                score = collections.Counter()
                for w in words:
                    score.update(table.get(w, {}))
                answer = score.most_common(1)[0][0] if score else prompt.labels[0]
                raw = f"Answer: {answer}"
            elif self.cfg.backend.junk_every and i % self.cfg.backend.junk_every == 0:
                raw = "I am not sure."
            else:
                score = collections.Counter({lab: sum(w in ex.text.lower() for w in WORD.findall(
                    lab.lower())) for lab in prompt.labels})
                raw = score.most_common(1)[0][0]
            items.append(Prediction(id=ex.id, raw_text=raw, latency_s=0.001))
        return Predictions(model, tuple(items), {"time/fake_predict_s": 0.001})


class FakePlugin:
    """Registered and unregistered by the ``fake_backend`` fixture."""

    @hookimpl
    def ftlab_register_backends(self, register):
        register("fake", lambda cfg, ctx: FakeBackend(cfg, ctx), FakeConfig)
