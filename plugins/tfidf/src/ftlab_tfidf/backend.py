"""The ``tfidf`` backend: TF-IDF word n-grams + a linear classifier, fitted on the raw texts.

No prompt and no LLM: ``train`` fits the vectorizer and the classifier on the training texts,
``predict`` answers the highest-scoring label with every label's decision score. The base model
is the majority class of the training split (sklearn's ``DummyClassifier("most_frequent")``), the
floor the tuned model must beat, so every stage, ``compare`` included, means something.

The tuned model is one ``.npz`` of plain arrays (vocabulary, idf, coef, intercept, classes, options
as JSON), read back with ``allow_pickle=False``: loading a model file can never run code. Every
prediction, in the training process too, goes through that file, so what is scored is what is saved.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ftlab.contract import Example, ModelRef, Prediction, Predictions, TrainedModel, TrainJob

NAME = "tfidf"
MODEL_FILE = "tfidf_model.npz"


def _vectorizer(opts: dict, vocabulary=None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, opts["ngram_max"]), min_df=opts["min_df"],
                           sublinear_tf=opts["sublinear_tf"], vocabulary=vocabulary, dtype=np.float64)


class TfidfBackend:
    """Satisfies :class:`ftlab.contract.Backend`; built by the plugin's factory ``(cfg, ctx)``."""

    def __init__(self, cfg, ctx):
        self.cfg, self.ctx = cfg, ctx
        self._models: dict[str, tuple[Any, np.ndarray, np.ndarray, list[str]]] = {}

    def base_model(self) -> ModelRef:
        return ModelRef(backend=NAME, kind="base", extra={"model": "majority_class"})

    def train(self, job: TrainJob) -> TrainedModel:
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        if getattr(self.cfg.train.method, "value", self.cfg.train.method) == "none":
            return TrainedModel(model=self.base_model())  # train.method=none: keep the majority class
        bc, t0 = self.cfg.backend, time.perf_counter()
        opts = {"format": 1, "ngram_max": bc.ngram_max, "min_df": bc.min_df, "sublinear_tf": bc.sublinear_tf,
                "classifier": bc.classifier.value, "C": bc.C, "class_weight": bc.class_weight.value}
        vec = _vectorizer(opts)
        x = vec.fit_transform([job.prompt.cut_input(ex.text)[0] for ex in job.train])
        y = [ex.label for ex in job.train]
        kw = {"C": bc.C, "max_iter": bc.max_iter, "random_state": self.cfg.seed,
              "class_weight": None if bc.class_weight.value == "none" else "balanced"}
        clf = LinearSVC(**kw) if bc.classifier.value == "linear_svc" else LogisticRegression(**kw)
        clf.fit(x, y)
        terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)  # column order
        path = Path(job.out_dir) / MODEL_FILE
        np.savez_compressed(path, terms=np.array("\n".join(terms)), idf=vec.idf_, coef=clf.coef_,
                            intercept=clf.intercept_, classes=np.array(clf.classes_, dtype=str),
                            options=np.array(json.dumps(opts)))
        ref = ModelRef(backend=NAME, kind="tuned", uri=str(path), extra={"classifier": opts["classifier"]})
        metrics = {"time/train_s": time.perf_counter() - t0, "train/features": float(len(terms)),
                   "train/accuracy": float(clf.score(x, y))}
        return TrainedModel(model=ref, metrics=metrics, artifacts=(str(path),))

    def _load(self, uri: str):
        if uri not in self._models:
            with np.load(uri, allow_pickle=False) as z:
                opts = json.loads(str(z["options"]))
                vec = _vectorizer(opts, vocabulary=str(z["terms"]).split("\n"))
                vec.idf_ = z["idf"]
                self._models[uri] = (vec, z["coef"], z["intercept"], [str(c) for c in z["classes"]])
        return self._models[uri]

    def _scores(self, model: ModelRef, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """``(classes, scores)``, one row of per-class scores for each text."""
        if model.backend != NAME:
            raise ValueError(f"tfidf cannot predict with a {model.backend!r} model reference")
        if model.kind == "base":  # class frequencies of the training split; ties go to the first label
            from ftlab.data import load_splits

            counts = Counter(ex.label for ex in load_splits(self.cfg.data, [], need_train=True)["train"].examples)
            classes = list(self.cfg.data.labels)
            freq = np.array([counts[c] for c in classes], dtype=float) / sum(counts.values())
            return classes, np.tile(freq, (len(texts), 1))
        vec, coef, intercept, classes = self._load(model.uri)
        s = vec.transform(texts) @ coef.T + intercept
        return classes, (np.hstack([-s, s]) if len(classes) == 2 else s)  # binary: one column

    def predict(self, model: ModelRef, examples: Sequence[Example], prompt: Any,
                decoding: Any) -> Predictions:
        t0 = time.perf_counter()
        # the classifier reads the transcript itself (no instruction), within the host's character budget
        sent = [prompt.cut_input(ex.text) for ex in examples]
        classes, s = self._scores(model, [text for text, _ in sent])
        items = tuple(Prediction(id=ex.id, raw_text=classes[int(np.argmax(row))],
                                 scores={c: float(v) for c, v in zip(classes, row)},
                                 prompt=text, truncation={"chars": cut} if cut else None)
                      for ex, row, (text, cut) in zip(examples, s, sent))
        dt = time.perf_counter() - t0
        return Predictions(model=model, items=items, metrics={
            "time/predict_s": dt, "time/predict_s_per_example": dt / max(len(examples), 1)})
