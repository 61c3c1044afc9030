"""Text metrics against the libraries' own documented examples and hand-computed values."""

from __future__ import annotations

import pytest

from ftlab.contract import Example, ModelRef, Prediction, Predictions
from ftlab.metrics import text as tm

# sacrebleu's README (https://github.com/mjpost/sacrebleu, "Using SacreBLEU from Python"): two
# reference streams for three system sentences; BLEU = 48.53, chrF2 = 59.73.
SACRE_REFS = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
              ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]
SACRE_SYS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]


def _corpus(metric, key, hyps, refs_per_hyp):
    total = None
    for h, refs in zip(hyps, refs_per_hyp):
        st = metric.stats(h, refs)[key]
        total = st if total is None else [a + b for a, b in zip(total, st)]
    return metric.value(key, total)


def test_bleu_and_chrf_reproduce_sacrebleus_documented_example():
    refs = list(zip(*SACRE_REFS))
    assert _corpus(tm.BLEU, "bleu", SACRE_SYS, refs) == pytest.approx(48.530827, abs=1e-5)
    assert _corpus(tm.CHRF, "chrf", SACRE_SYS, refs) == pytest.approx(59.727518, abs=1e-5)
    assert _corpus(tm.BLEU4, "bleu4", SACRE_SYS, refs) == pytest.approx(0.48530827, abs=1e-7)
    assert "tok:13a" in tm.BLEU.signature() and "version:" in tm.CHRF.signature()


def test_bleu_by_hand():
    """'the cat sat on a mat' vs 'the cat sat on the mat': n-gram precisions 5/6, 3/5, 2/4, 1/3,
    equal lengths (brevity penalty 1): BLEU = 100 * exp(mean of their logs) = 53.73, corpus and sentence."""
    import math

    exp = 100 * math.exp((math.log(5 / 6) + math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)) / 4)
    assert _corpus(tm.BLEU, "bleu", ["the cat sat on a mat"], [["the cat sat on the mat"]]) == pytest.approx(exp)
    assert tm.BLEU.example("the cat sat on a mat", ["the cat sat on the mat"])["bleu"] == pytest.approx(exp)
    # two words differ: unigram 4/6, the higher orders as before
    got = _corpus(tm.BLEU, "bleu", ["the cat sat on a rug"], [["the cat sat on the mat"]])
    exp0 = 100 * math.exp((math.log(4 / 6) + math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)) / 4)
    assert got == pytest.approx(exp0)


def test_rouge_reproduces_rouge_scores_documented_example():
    # rouge-score README: scorer.score('The quick brown fox jumps over the lazy dog',   (target)
    #                                  'The quick brown dog jumps on the log.')          (prediction)
    # rouge1 precision 0.75, recall 0.6667, fmeasure 0.7059; rougeL precision 0.625, recall 0.5556, f 0.5882
    s = tm.rouge_scores("The quick brown dog jumps on the log.", ["The quick brown fox jumps over the lazy dog"])
    assert (s["rouge1_precision"], s["rouge1_recall"], s["rouge1_f1"]) == pytest.approx((0.75, 2 / 3, 12 / 17))
    assert (s["rougeL_precision"], s["rougeL_recall"], s["rougeL_f1"]) == pytest.approx((0.625, 5 / 9, 10 / 17))


def test_rouge_by_hand_with_stemming_and_several_references():
    # 'patients were seen' vs 'patient seen today': stems patient, seen (were, today differ) → 2 of 3 each
    s = tm.rouge_scores("patients were seen", ["patient seen today"])
    assert s["rouge1_f1"] == pytest.approx(2 / 3) and s["rouge2_f1"] == pytest.approx(0.0)
    best = tm.rouge_scores("chest pain", ["knee pain", "chest pain"])  # the best reference counts
    assert best["rougeL_f1"] == 1.0


def test_rougelsum_splits_sentences_without_nltk():
    assert tm.sentences("Chest pain. Rule out MI.\nHistory of CAD! OK? yes") == [
        "Chest pain.", "Rule out MI.", "History of CAD!", "OK? yes"]
    pred, ref = "Rule out MI. Chest pain.", "Chest pain. Rule out MI."
    s = tm.rouge_scores(pred, [ref])
    assert s["rougeLsum_f1"] == 1.0 and s["rougeL_f1"] < 1.0  # summary-level LCS per sentence


def test_squad_exact_match_and_token_f1():
    # SQuAD v1.1 evaluation script's normalisation: case, punctuation, articles, whitespace
    assert tm.normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert tm.exact_match("the Denver Broncos.", ["Denver Broncos", "Broncos"]) == 1.0
    assert tm.exact_match("Denver", ["Denver Broncos"]) == 0.0
    # 'denver broncos won' vs 'denver broncos': 2 common, P 2/3, R 1 → F1 0.8
    assert tm.token_f1("Denver Broncos won", ["the Denver Broncos"]) == pytest.approx(0.8)
    assert tm.token_f1("Carolina", ["Denver Broncos", "Carolina Panthers"]) == pytest.approx(2 / 3)
    assert tm.token_f1("", [""]) == 1.0 and tm.token_f1("x", [""]) == 0.0


def _scored(stage, answers, refs):
    from ftlab.evaluate_text import score_text

    ex = [Example(f"r{i}", "t", "", references=tuple(r)) for i, r in enumerate(refs)]
    preds = Predictions(ModelRef("x", stage), tuple(Prediction(e.id, a) for e, a in zip(ex, answers)))
    return score_text(stage, "eval", ex, preds, [tm.ROUGE, tm.BLEU, tm.EXACT_MATCH])


def test_corpus_values_and_per_example_scores():
    s = _scored("tuned", ["chest pain", "knee", ""], [["chest pain"], ["knee pain"], ["fever"]])
    assert s.corpus["exact_match"] == pytest.approx(1 / 3)
    assert [e["exact_match"] for e in s.per_example] == [1.0, 0.0, 0.0]
    assert s.corpus["rouge1_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert s.headline()["empty_rate"] == pytest.approx(1 / 3)
    assert s.value("exact_match", [0, 0]) == 1.0  # the corpus value of any resample


def test_paired_comparison_of_a_generation_metric():
    from ftlab.metrics.compare_text import paired_compare_text

    refs = [["chest pain"], ["knee pain"], ["fever and cough"], ["rash"]] * 10
    base = _scored("base", ["x", "knee pain", "fever", "rash"] * 10, refs)
    tuned = _scored("tuned", ["chest pain", "knee pain", "fever and cough", "skin"] * 10, refs)
    c = paired_compare_text(base, tuned, ["exact_match", "rouge1_f1", "bleu"], resamples=300, seed=1)
    em = c["exact_match"]
    assert em.delta == pytest.approx(0.75 - 0.5) and em.ci_low <= em.delta <= em.ci_high
    assert (em.wins, em.ties, em.losses) == (20, 10, 10)
    assert c["bleu"].delta == pytest.approx(tuned.corpus["bleu"] - base.corpus["bleu"])
    assert c["bleu"].ci_low <= c["bleu"].delta <= c["bleu"].ci_high
    same = paired_compare_text(base, base, ["rouge1_f1"], resamples=50)["rouge1_f1"]
    assert same.delta == 0 and same.ci_low == same.ci_high == 0 and same.ties == 40
