"""Cross-validation (stage ``cross_validate``, ``eval.cv``): folds, what each fold trains on, the metrics."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest
from conftest import mlflow_client
from fake_backend import FakeBackend, FakeConfig

from ftlab import hookimpl
from ftlab.contract import Example

JOBS: list[tuple[tuple[str, ...], bool]] = []
"""(training row ids, repeat) of every TrainJob the recording backend got."""


@dataclass
class RecordingConfig(FakeConfig):
    """The fake backend, recording its training jobs."""

    name: str = "recording"
    """Backend name."""


class RecordingBackend(FakeBackend):
    def train(self, job):
        JOBS.append((tuple(ex.id for ex in job.train), job.repeat))
        return super().train(job)


class RecordingPlugin:
    @hookimpl
    def ftlab_register_backends(self, register):
        register("recording", lambda cfg, ctx: RecordingBackend(cfg, ctx), RecordingConfig)


@pytest.fixture
def recording(fake_backend, tmp_path):
    from ftlab.config.compose import compose
    from ftlab.runner import run

    name = fake_backend.register(RecordingPlugin(), name="recording_plugin")
    JOBS.clear()

    def _run(*overrides: str, run_dir=None):
        cfg = compose(["+experiment=smoke", "backend=recording", *overrides], fake_backend)
        run_dir = run_dir or tmp_path / "run"
        return run(cfg, run_dir=run_dir, plugins=fake_backend), run_dir

    yield _run
    fake_backend.unregister(name)


def _rows(n_texts: int, dup_every: int = 3) -> list[Example]:
    """Rows over 3 labels; every ``dup_every``-th text is filed under a second label too."""
    labels = ["A", "B", "C"]
    rows = []
    for t in range(n_texts):
        lab = labels[t % 3]
        rows.append(Example(f"r{len(rows)}", f"text {t}", lab))
        if t % dup_every == 0:
            rows.append(Example(f"r{len(rows)}", f"text {t}", labels[(t + 1) % 3]))
    return rows


def test_folds_are_disjoint_grouped_by_text_stratified_and_seeded():
    from ftlab.cv import assign_folds

    rows = _rows(60)
    folds = assign_folds(rows, 5, seed=3, group_by="text")
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    by_text: dict[str, set[int]] = {}
    for ex, k in zip(rows, folds):
        by_text.setdefault(ex.text, set()).add(k)
    assert all(len(ks) == 1 for ks in by_text.values())  # a transcript never sits in two folds
    for lab in "ABC":  # stratified: each fold holds about a fifth of every label
        counts = [sum(1 for ex, k in zip(rows, folds) if ex.label == lab and k == f) for f in range(5)]
        assert max(counts) - min(counts) <= 3, (lab, counts)
    assert assign_folds(rows, 5, seed=3, group_by="text") == folds
    assert assign_folds(rows, 5, seed=4, group_by="text") != folds
    loose = assign_folds(rows, 5, seed=3, group_by="none")
    assert any(len({k for ex, k in zip(rows, loose) if ex.text == t}) > 1 for t in by_text)
    with pytest.raises(ValueError, match="only 3 distinct texts"):
        assign_folds(_rows(3), 5, 0, "text")
    with pytest.raises(ValueError, match="group_by"):
        assign_folds(rows, 5, 0, "label")


def test_summary_is_mean_std_and_standard_error():
    from ftlab.cv import summarize

    s = summarize([{"macro_f1": 0.5}, {"macro_f1": 0.7}, {"macro_f1": 0.6}])
    assert s["macro_f1_mean"] == pytest.approx(0.6)
    assert s["macro_f1_std"] == pytest.approx(0.1)
    assert s["macro_f1_stderr"] == pytest.approx(0.1 / math.sqrt(3))


def test_stage_order_and_config_errors(plugins):
    from ftlab.config.compose import ConfigError, compose, validate

    def typed(*o):
        return validate(compose(["+experiment=smoke", *o], plugins))

    assert typed().stage_order() == ["evaluate_base", "train", "evaluate_tuned", "compare"]
    assert typed("eval.cv.folds=5").stage_order() == ["evaluate_base", "cross_validate", "train",
                                                       "evaluate_tuned", "compare"]
    assert typed("eval.cv.folds=5", "stages=[evaluate_base]").stage_order() == ["evaluate_base",
                                                                                 "cross_validate"]
    assert typed("eval.cv.folds=3", "stages=[cross_validate]").stage_order() == ["cross_validate"]
    with pytest.raises(ConfigError, match="eval.cv.folds must be 0 .off. or at least 2"):
        typed("eval.cv.folds=1")
    with pytest.raises(ConfigError, match="set eval.cv.folds=5"):
        typed("stages=[cross_validate]")


def test_every_training_row_is_scored_once_by_a_model_that_never_saw_it(recording):
    objective, run_dir = recording("eval.cv.folds=4", "data.max_train_rows=32")
    folds = json.loads((run_dir / "cv/folds.json").read_text())
    assignment = folds["assignment"]
    assert len(assignment) == 32 and sorted(set(assignment.values())) == [1, 2, 3, 4]
    fold_jobs, final = JOBS[:4], JOBS[4:]
    assert all(repeat for _, repeat in fold_jobs) and final == [(tuple(sorted(assignment, key=lambda i: int(
        i.split("-")[1]))), False)]  # then one training on all of train, not a repeat
    scored: list[str] = []
    for k, (train_ids, _) in enumerate(fold_jobs, 1):
        held = [json.loads(x)["id"] for x in (run_dir / f"cv/fold_{k}/predictions.jsonl").read_text().splitlines()]
        assert {i for i, f in assignment.items() if f == k} == set(held)
        assert not set(held) & set(train_ids) and set(held) | set(train_ids) == set(assignment)
        scored += held
    assert sorted(scored) == sorted(assignment)  # every training row exactly once
    oof = [json.loads(x) for x in (run_dir / "cv/oof/predictions.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in oof) == sorted(assignment)

    client = mlflow_client()
    (run,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    m = run.data.metrics
    per_fold = []
    for k in range(1, 5):
        rows = [json.loads(x) for x in (run_dir / f"cv/fold_{k}/predictions.jsonl").read_text().splitlines()]
        acc = sum(r["correct"] for r in rows) / len(rows)
        assert m[f"cv/fold_{k}/accuracy"] == pytest.approx(acc)
        assert m[f"cv/fold_{k}/lenient/accuracy"] == pytest.approx(
            sum(r["correct_lenient"] for r in rows) / len(rows))
        per_fold.append(m[f"cv/fold_{k}/macro_f1"])
    mean = sum(per_fold) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in per_fold) / 3)
    assert m["cv/macro_f1_mean"] == pytest.approx(mean) and m["cv/macro_f1_stderr"] == pytest.approx(std / 2)
    assert {"cv/lenient/macro_f1_mean", "cv/oof/macro_f1", "cv/oof/lenient/macro_f1", "cv/folds"} <= set(m)
    assert m["cv/oof/accuracy"] == pytest.approx(sum(r["correct"] for r in oof) / 32)
    assert [h.step for h in client.get_metric_history(run.info.run_id, "cv/fold_1/train/loss")] == [1, 2, 3]
    assert "eval/tuned/eval/macro_f1" in m  # the final model is still trained on all of train and evaluated
    assert objective == pytest.approx(m["cv/macro_f1_mean"])  # the default objective selects on train
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "cv")}
    assert {"cv/folds.json", "cv/fold_1", "cv/oof", "cv/summary.json"} <= arts


def test_cross_validation_only_and_resume_keeps_finished_folds(recording, tmp_path):
    _, run_dir = recording("eval.cv.folds=3", "stages=[cross_validate]", "data.max_train_rows=24")
    assert len(JOBS) == 3 and not (run_dir / "eval").exists()
    before = (run_dir / "cv/fold_1/predictions.jsonl").read_text()
    state = json.loads((run_dir / "state.json").read_text())
    state["cv_folds_done"] = [1, 2]  # as if the process died during fold 3
    (run_dir / "state.json").write_text(json.dumps(state))
    JOBS.clear()
    recording("eval.cv.folds=3", "stages=[cross_validate]", "data.max_train_rows=24", f"resume={run_dir}")
    assert len(JOBS) == 1  # only the unfinished fold trained again
    assert (run_dir / "cv/fold_1/predictions.jsonl").read_text() == before
    with pytest.raises(Exception, match=r"config eval.cv.seed: 0 -> 9"):  # other folds: resume refuses
        recording("eval.cv.folds=3", "eval.cv.seed=9", "stages=[cross_validate]", "data.max_train_rows=24",
                  f"resume={run_dir}")


def test_search_on_the_reported_split_is_warned_and_tagged(fake_backend, tmp_path, capsys):
    from test_sweeps import ftlab_main, parent_and_children

    rc = ftlab_main("-m", "+experiment=smoke", "backend=fake", "data.max_train_rows=8,16",
                    "sweep.objective=eval/tuned/eval/macro_f1", f"hydra.sweep.dir={tmp_path / 'a'}")
    assert rc == 0
    _, parent, _ = parent_and_children()
    assert "selected on themselves" in parent.data.tags["ftlab.sweep.selection_warning"]
    assert "eval.cv.folds=5" in capsys.readouterr().out


def test_a_cross_validated_search_is_not_warned_and_ranks_by_the_cv_mean(fake_backend, tmp_path, capsys):
    from test_sweeps import ftlab_main, parent_and_children

    rc = ftlab_main("-m", "+experiment=smoke", "backend=fake", "data.max_train_rows=16,32",
                    "eval.cv.folds=3", "stages=[cross_validate]", f"hydra.sweep.dir={tmp_path / 'b'}")
    assert rc == 0
    client, parent, children = parent_and_children()
    assert "ftlab.sweep.selection_warning" not in parent.data.tags
    assert parent.data.tags["ftlab.sweep.objective"] == "cv/macro_f1_mean"
    best = max(children, key=lambda c: c.data.metrics["cv/macro_f1_mean"])
    assert parent.data.metrics["sweep/best_objective"] == pytest.approx(best.data.metrics["cv/macro_f1_mean"])
    assert parent.data.metrics["best/cv/macro_f1_stderr"] == pytest.approx(best.data.metrics["cv/macro_f1_stderr"])
    table = client.load_table(parent.info.experiment_id, "sweep/ranking.json", run_ids=[parent.info.run_id])
    assert "stderr" in table.columns


def test_selection_warning_rules(plugins):
    from ftlab.config.compose import compose
    from ftlab.sweeps.parent import selection_warning

    cfg = compose(["+experiment=smoke"], plugins)
    assert selection_warning(cfg, "eval/tuned/eval/macro_f1", ["train.learning_rate"])
    assert selection_warning(cfg, "compare/eval/macro_f1_delta", ["train.epochs"])
    assert not selection_warning(cfg, "eval/tuned/eval/macro_f1", ["seed", "train.seed"])  # seeds only
    assert not selection_warning(cfg, "cv/macro_f1_mean", ["train.learning_rate"])
    assert not selection_warning(cfg, "eval/tuned/test/macro_f1", ["train.learning_rate"])  # test not reported
