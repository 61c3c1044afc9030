"""Generation tasks on bqml through the real client and the fake: raw-text answers from AI.GENERATE_TEXT
(or ML.GENERATE_TEXT), tuning for the task, ML.EVALUATE's native numbers equal to the host's own."""

from __future__ import annotations

import json

import pytest

from ftlab.contract import Decoding, Example, TrainJob

from ftlab_bqml.testing import generation_prompt, load_summaries

GEN = Decoding(mode="generate", max_new_tokens=48)


def _groups(task: str):
    from ftlab.config import DataConfig, EvalConfig

    return {"eval": EvalConfig(task=task), "data": DataConfig(name="gen", labels=[])}


def _host(examples, preds, metric_names):
    """The host's corpus values for ``preds`` (what the runner logs as eval/<stage>/<split>/<key>)."""
    from ftlab.evaluate_text import score_text
    from ftlab.plugins import get_plugins

    plugins = get_plugins()
    return score_text("s", "eval", examples, preds, [plugins.metric(n) for n in metric_names]).corpus


def test_summarization_base_tune_tuned_native_equals_host(make_backend, fake_bq, tmp_path):
    backend, _ = make_backend(groups=_groups("summarization"), max_output_tokens=64)
    prompt = generation_prompt()
    train, evals = load_summaries("train", 40), load_summaries("eval", 20)
    base = backend.base_model()
    before = backend.predict(base, evals, prompt, GEN)
    native_base = backend.native_evaluate(base, evals, prompt)

    table = next(t for k, t in fake_bq.engine.tables.items() if "_eval_" in k)
    assert {r["id"]: r["output_text"] for r in table.rows} == {ex.id: ex.references[0] for ex in evals}
    assert all(p.raw_text and not p.label for p in before.items)  # raw text, no label parsing
    assert set(native_base) == {"rouge-l_precision", "rouge-l_recall", "rouge-l_f1_score",
                                "num_successful_rows", "num_total_rows"}
    host_base = _host(evals, before, ["rouge"])
    for ours, theirs in (("rougeL_precision", "rouge-l_precision"), ("rougeL_recall", "rouge-l_recall"),
                         ("rougeL_f1", "rouge-l_f1_score")):
        assert native_base[theirs] == pytest.approx(host_base[ours], abs=1e-12), ours
    assert native_base["num_total_rows"] == native_base["num_successful_rows"] == 20
    assert "('summarization' AS task_type" in backend.runner.stats.statements[-1][1]

    out = tmp_path / "train"
    out.mkdir()
    trained = backend.train(TrainJob(train=train, eval=evals, prompt=prompt, out_dir=out))
    (tuned_model,) = [m for m in fake_bq.engine.models.values() if m["kind"] == "tuned"]
    assert tuned_model["options"]["evaluation_task"] == "SUMMARIZATION"
    assert "evaluation_task = 'SUMMARIZATION'" in json.loads((out / "bqml_job.json").read_text())["sql"]
    after = backend.predict(trained.model, evals, prompt, GEN)
    native_tuned = backend.native_evaluate(trained.model, evals, prompt)
    assert [p.raw_text for p in after.items] != [p.raw_text for p in before.items]  # tuning changed the text
    words = sorted(len(ex.references[0].split()) for ex in train)
    lengths = [len(p.raw_text.split()) for p in after.items]  # the references' median (fewer if cut at 256 chars)
    assert max(lengths) == round((words[19] + words[20]) / 2) and lengths.count(max(lengths)) >= 15
    assert native_tuned["rouge-l_f1_score"] == pytest.approx(_host(evals, after, ["rouge"])["rougeL_f1"], abs=1e-12)
    kinds = [k for k, _, _ in backend.runner.stats.statements]
    assert kinds == ["create_model", "upload", "generate_text", "evaluate", "upload", "create_tuned_model",
                     "generate_text", "evaluate"]
    assert all("AI.GENERATE_TEXT" in s for k, s, _ in backend.runner.stats.statements if k == "generate_text")


QA_TEMPLATE = "Answer with the passage's first word.\n{text}"
PLACES = ["Paris", "Lima", "Oslo", "Quito", "Rome", "Cairo", "Tokyo", "Delhi", "Accra", "Bern", "Dakar", "Hanoi",
          "Seoul", "Minsk", "Riga", "Sofia"]


def _qa_rows(split: str, names) -> tuple[Example, ...]:
    return tuple(Example(id=f"{split}-{i}", text=f"{n} is a capital city with a long and busy history.", label="",
                         references=(f"{n} city", n) if i == 0 else (n,))
                 for i, n in enumerate(names))


def test_question_answering_native_exact_match_uses_the_first_answer(make_backend, fake_bq, tmp_path):
    """ML.EVALUATE has one label column: native exact match compares with the first acceptable answer,
    ftlab's with every one (the first eval row is right only by its second answer)."""
    backend, _ = make_backend(groups=_groups("question_answering"))
    prompt = generation_prompt(QA_TEMPLATE)
    train, evals = _qa_rows("train", PLACES[:12]), _qa_rows("eval", PLACES[12:])
    out = tmp_path / "train"
    out.mkdir()
    trained = backend.train(TrainJob(train=train, eval=evals, prompt=prompt, out_dir=out))
    preds = backend.predict(trained.model, evals, prompt, GEN)
    assert [p.raw_text for p in preds.items] == PLACES[12:]
    native = backend.native_evaluate(trained.model, evals, prompt)
    assert set(native) == {"exact_match", "num_successful_rows", "num_total_rows"}
    assert native["exact_match"] == pytest.approx(3 / 4)
    assert _host(evals, preds, ["exact_match"])["exact_match"] == pytest.approx(1.0)


def test_text_generation_native_bleu4_and_rouge_equal_host(make_backend, fake_bq):
    backend, _ = make_backend(groups=_groups("text_generation"))
    prompt = generation_prompt()
    evals = load_summaries("eval", 12)
    base = backend.base_model()
    preds = backend.predict(base, evals, prompt, GEN)
    native = backend.native_evaluate(base, evals, prompt)
    assert set(native) == {"bleu4_score", "rouge-l_precision", "rouge-l_recall", "rouge-l_f1_score",
                           "num_successful_rows", "num_total_rows"}
    host = _host(evals, preds, ["bleu4", "rouge"])
    assert 0 < native["bleu4_score"] < 1
    assert native["bleu4_score"] == pytest.approx(host["bleu4"], abs=1e-12)
    assert native["rouge-l_f1_score"] == pytest.approx(host["rougeL_f1"], abs=1e-12)


def test_ml_generate_text_gives_the_same_answers_and_stop_strings_cut_them(make_backend, fake_bq):
    prompt = generation_prompt()
    evals = load_summaries("eval", 8)
    ai, _ = make_backend(groups=_groups("summarization"))
    ml, _ = make_backend(groups=_groups("summarization"), generate_function="ml")
    got_ai = ai.predict(ai.base_model(), evals, prompt, GEN)
    got_ml = ml.predict(ml.base_model(), evals, prompt, GEN)
    assert [p.raw_text for p in got_ai.items] == [p.raw_text for p in got_ml.items]
    (ml_sql,) = [s for k, s, _ in ml.runner.stats.statements if k == "generate_text"]
    assert "FROM ML.GENERATE_TEXT(" in ml_sql and "TRUE AS flatten_json_output" in ml_sql
    stop = Decoding(mode="generate", max_new_tokens=48, stop=(".,", "zzz"))
    cut = ai.predict(ai.base_model(), evals, prompt, stop)
    assert any(".," in p.raw_text for p in got_ai.items)
    for full, short in zip(got_ai.items, cut.items):
        assert ".," not in short.raw_text and full.raw_text.startswith(short.raw_text)
        assert short.raw_text == full.raw_text.split(".,")[0]
    assert all("stop_sequences" not in s and "zzz" not in s for _, s, _ in ai.runner.stats.statements)


def test_fake_rejects_a_generate_function_with_the_other_s_columns(bq_client, fake_bq):
    from google.api_core import exceptions

    from ftlab_bqml import sql
    from ftlab_bqml.testing import PROJECT

    m, t = sql.ref(PROJECT, "ftlab_ds", "m"), sql.ref(PROJECT, "ftlab_ds", "t")
    good = sql.generate_text(m, t, 16, 0.0, 1.0, function="ai")
    for bad, why in ((good.replace("result, status", "ml_generate_text_llm_result, ml_generate_text_status"),
                      "Unrecognized name: ml_generate_text_llm_result"),
                     (good.replace("1.0 AS top_p)", "1.0 AS top_p, TRUE AS flatten_json_output)"),
                      "flatten_json_output is not an argument of AI.GENERATE_TEXT"),
                     (sql.generate_text(m, t, 16, 0.0, 1.0, function="ml").replace(", TRUE AS flatten_json_output", ""),
                      "Unrecognized name: ml_generate_text_llm_result")):
        with pytest.raises(exceptions.BadRequest, match=why):
            bq_client.query(bad).result()


def test_flatten_accepts_both_rouge_f1_spellings():
    from ftlab_bqml.native import flatten_evaluation

    status = '{"num_successful_rows":175,"num_total_rows":176}'
    reference = flatten_evaluation([{"bleu4_score": 0.23, "rouge-l_precision": 0.38, "rouge-l_recall": 0.46,
                                     "rouge-l_f1": 0.41, "evaluation_status": status}])
    tutorial = flatten_evaluation([{"bleu4_score": 0.23, "rouge-l_precision": 0.38, "rouge-l_recall": 0.46,
                                    "rouge-l_f1_score": 0.41, "evaluation_status": status}])
    assert reference == tutorial == {"bleu4_score": 0.23, "rouge-l_precision": 0.38, "rouge-l_recall": 0.46,
                                     "rouge-l_f1_score": 0.41, "num_successful_rows": 175.0,
                                     "num_total_rows": 176.0}
    assert flatten_evaluation([{"exact_match": 0.5, "evaluation_status": status}])["exact_match"] == 0.5
