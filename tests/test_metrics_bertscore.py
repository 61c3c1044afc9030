"""BERTScore (the ``bertscore`` extra): hand-checkable properties with the packaged MiniLM encoder, the
plugin registration, and the clear error when the extra is missing."""

from __future__ import annotations

import sys

import pytest

from ftlab.metrics import bertscore as bs

needs_extra = pytest.mark.skipif(bool(bs.missing()), reason="the bertscore extra is not installed")


@needs_extra
def test_identical_strings_score_one_and_closer_texts_score_higher():
    same = bs.bertscore("Patient with chest pain, rule out myocardial infarction.",
                        ["Patient with chest pain, rule out myocardial infarction."])
    assert all(same[k] == pytest.approx(1.0, abs=1e-4) for k in bs.KEYS)
    ref = ["Colonoscopy for rectal bleeding."]
    close = bs.bertscore("Colonoscopy because of rectal bleeding.", ref)["bertscore_f1"]
    far = bs.bertscore("The weather was sunny all week.", ref)["bertscore_f1"]
    assert close > far + 0.2  # a paraphrase is much nearer than an unrelated sentence
    assert 0.0 <= far < 1.0


@needs_extra
def test_precision_and_recall_follow_what_is_added_and_swap_with_the_roles():
    short, long_ = "Knee arthroscopy.", "Knee arthroscopy with partial medial meniscectomy under general anesthesia."
    longer = bs.bertscore(long_, [short])
    # the reference's tokens all have a close match in the prediction; the prediction's extra words do not
    assert longer["bertscore_recall"] > longer["bertscore_precision"] + 0.2
    # greedy matching is symmetric: swapping prediction and reference swaps precision and recall
    swapped = bs.bertscore(short, [long_])
    assert swapped["bertscore_precision"] == pytest.approx(longer["bertscore_recall"], abs=1e-5)
    assert swapped["bertscore_recall"] == pytest.approx(longer["bertscore_precision"], abs=1e-5)
    assert swapped["bertscore_f1"] == pytest.approx(longer["bertscore_f1"], abs=1e-5)


@needs_extra
def test_several_references_take_the_best_and_the_corpus_value_is_the_mean(plugins):
    from ftlab.contract import Example, ModelRef, Prediction, Predictions
    from ftlab.evaluate_text import score_text

    pred = "Cataract extraction, right eye."
    one = bs.bertscore(pred, ["Total knee replacement."])["bertscore_f1"]
    two = bs.bertscore(pred, ["Cataract extraction of the right eye."])["bertscore_f1"]
    assert bs.bertscore(pred, ["Total knee replacement.", "Cataract extraction of the right eye."])[
        "bertscore_f1"] == pytest.approx(max(one, two))
    metric = plugins.metric("bertscore")  # registered by ftlab's default plugin, like ROUGE
    ex = (Example("a", "x", "", references=("Total knee replacement.",)),
          Example("b", "y", "", references=("Cataract extraction of the right eye.",)))
    s = score_text("base", "eval", ex, Predictions(ModelRef("x", "base"), (Prediction("a", pred), Prediction("b", pred))),
                   [metric])
    assert s.corpus["bertscore_f1"] == pytest.approx((one + two) / 2)
    assert [e["bertscore_f1"] for e in s.per_example] == pytest.approx([one, two])
    assert "all-MiniLM-L6-v2" in s.signatures["bertscore"] and "not comparable" in s.signatures["bertscore"]


def test_without_the_extra_composition_fails_naming_the_extra(plugins, monkeypatch):
    from ftlab.config.compose import ConfigError, compose, validate

    monkeypatch.setitem(sys.modules, "bert_score", None)  # how Python marks a module as not importable
    assert "bert-score" in bs.missing()
    with pytest.raises(ConfigError, match=r"metric 'bertscore' in eval.metrics needs bert-score .*"
                                          r"pip install 'ftlab\[bertscore\]'"):
        validate(compose(["+experiment=mtsamples_summarize_smoke", "eval.metrics=[rouge,bertscore]"], plugins))
    # the other metrics do not need it
    validate(compose(["+experiment=mtsamples_summarize_smoke", "eval.metrics=[rouge]"], plugins))
