"""The ``extractive`` backend: lead-k words or sentences of the input, k chosen on the training split.

Every generation result should be read against what copying the beginning of the input scores
(on MTSamples, the first 20 words of a transcript reach ROUGE-L F1 ~0.35 against its description).
``train`` scores each candidate k on the training rows with the host's own metric implementation
and keeps the best; ``predict`` cuts each input. Deterministic, no model, seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from ftlab.contract import Example, ModelRef, Prediction, Predictions, TrainedModel, TrainJob

NAME = "extractive"
MODEL_FILE = "extractive.json"


def lead(text: str, unit: str, k: int) -> str:
    """The first ``k`` words (or sentences) of ``text``."""
    if unit == "sentences":
        from ftlab.metrics.text import sentences

        return " ".join(sentences(text)[:k])
    return " ".join(text.split()[:k])


def _metric_for(key: str):
    from ftlab.plugins import get_plugins

    for m in get_plugins().metrics().values():
        if key in m.keys:
            return m
    raise ValueError(f"backend.select_on={key!r} is no key of a registered text metric")


class ExtractiveBackend:
    """Satisfies :class:`ftlab.contract.Backend`; built by the plugin's factory ``(cfg, ctx)``."""

    def __init__(self, cfg, ctx):
        self.cfg, self.ctx = cfg, ctx
        self.unit = getattr(cfg.backend.unit, "value", cfg.backend.unit)

    def base_model(self) -> ModelRef:
        return ModelRef(backend=NAME, kind="base", extra={"unit": self.unit, "k": self.cfg.backend.k})

    def train(self, job: TrainJob) -> TrainedModel:
        if getattr(self.cfg.train.method, "value", self.cfg.train.method) == "none":
            return TrainedModel(model=self.base_model())
        bc, t0 = self.cfg.backend, time.perf_counter()
        metric = _metric_for(bc.select_on)
        means = {}
        for k in sorted(set(bc.choices)):
            vals = [metric.example(lead(job.prompt.cut_input(ex.text)[0], self.unit, k), ex.references)[bc.select_on]
                    for ex in job.train]
            means[k] = sum(vals) / max(len(vals), 1)
            self.ctx.log_metrics({f"train/{bc.select_on}": means[k]}, k)
        best = max(means, key=lambda k: (means[k], -k))
        path = Path(job.out_dir) / MODEL_FILE
        path.write_text(json.dumps({"unit": self.unit, "k": best, "select_on": bc.select_on,
                                    "train_means": {str(k): v for k, v in means.items()}}, indent=1))
        ref = ModelRef(backend=NAME, kind="tuned", uri=str(path), extra={"unit": self.unit, "k": best})
        history = tuple({"step": k, f"train/{bc.select_on}": v} for k, v in means.items())
        return TrainedModel(model=ref, history=history, artifacts=(str(path),),
                            metrics={"time/train_s": time.perf_counter() - t0, "train/k": float(best),
                                     f"train/best_{bc.select_on}": means[best]})

    def predict(self, model: ModelRef, examples: Sequence[Example], prompt: Any, decoding: Any) -> Predictions:
        if model.backend != NAME:
            raise ValueError(f"extractive cannot predict with a {model.backend!r} model reference")
        t0 = time.perf_counter()
        if model.kind == "tuned":
            saved = json.loads(Path(model.uri).read_text())
            unit, k = saved["unit"], int(saved["k"])
        else:
            unit, k = self.unit, self.cfg.backend.k
        items = []
        for ex in examples:
            text, cut = prompt.cut_input(ex.text)  # the host's character budget, as for every backend
            items.append(Prediction(id=ex.id, raw_text=lead(text, unit, k), prompt=text,
                                    truncation={"chars": cut} if cut else None))
        dt = time.perf_counter() - t0
        return Predictions(model=model, items=tuple(items), metrics={"time/predict_s": dt})
