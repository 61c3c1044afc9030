"""The lead-k floor: k chosen on the training split, predictions are the inputs' beginnings."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from ftlab.contract import Decoding, Example, RunContext, TrainJob


@dataclass
class _Prompt:
    def cut_input(self, text):
        return text, None


def _cfg(**backend):
    from ftlab_extractive.plugin import ExtractiveConfig, Unit

    bc = ExtractiveConfig(**backend)
    bc.unit = Unit(getattr(bc.unit, "value", bc.unit))
    return SimpleNamespace(backend=bc, train=SimpleNamespace(method="lora"))


def _rows(k: int, n: int = 12):
    """References are the first ``k`` words of their input."""
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()
    out = []
    for i in range(n):
        text = " ".join(words[(i + j) % len(words)] for j in range(14))
        out.append(Example(f"r{i}", text, "", references=(" ".join(text.split()[:k]),)))
    return tuple(out)


def test_training_picks_the_k_that_scores_best_on_the_training_rows(tmp_path):
    from ftlab_extractive.backend import ExtractiveBackend

    logged = []
    b = ExtractiveBackend(_cfg(choices=[2, 5, 10]), RunContext(tmp_path, log_metrics=lambda m, s=None: logged.append((s, m))))
    trained = b.train(TrainJob(train=_rows(5), eval=(), prompt=_Prompt(), out_dir=tmp_path))
    assert trained.metrics["train/k"] == 5.0 and trained.metrics["train/best_rougeL_f1"] == pytest.approx(1.0)
    assert [s for s, _ in logged] == [2, 5, 10]
    held = _rows(5, 3)
    preds = b.predict(trained.model, held, _Prompt(), Decoding(mode="generate"))
    assert [p.raw_text for p in preds.items] == [ex.references[0] for ex in held]
    base = b.predict(b.base_model(), held, _Prompt(), Decoding(mode="generate"))
    assert all(len(p.raw_text.split()) == 14 for p in base.items)  # k=20 > 14 words: the whole input


def test_sentences_unit():
    from ftlab_extractive.backend import lead

    text = "Chest pain. Rule out MI. History of CAD."
    assert lead(text, "sentences", 2) == "Chest pain. Rule out MI."
    assert lead(text, "words", 3) == "Chest pain. Rule"


def test_a_classification_task_on_extractive_fails_at_composition(plugins):
    from ftlab.config.compose import ConfigError, compose, validate

    with pytest.raises(ConfigError, match="eval.task=classification is not supported by backend 'extractive'"):
        validate(compose(["backend=extractive", "eval.decoding.mode=generate"], plugins))


def test_choosing_tfidf_for_a_generation_task_names_both(plugins):
    from ftlab.config.compose import ConfigError, compose, validate

    with pytest.raises(ConfigError, match="eval.task=summarization is not supported by backend 'tfidf'"):
        validate(compose(["+experiment=mtsamples_summarize_extractive", "backend=tfidf"], plugins))
