"""ftlab's numbers against scikit-learn's and MLflow's on the same static predictions.

- Per class: ftlab = ``sklearn.metrics.classification_report(labels=<configured labels>,
  output_dict=True, zero_division=0)`` with or without unparseable answers (an unparseable answer is
  a false negative of its true label and a false positive of nothing).
- Macro: ftlab = MLflow's ``mlflow.models.evaluate(model_type="classifier",
  evaluator_config={"average": "macro"})`` when every answer parsed. Both average over the labels
  present in the truth or the predictions.
- With unparseable answers MLflow counts ``<unparseable>`` as one more class (support 0, F1 0), so
  its macro-F1 is ftlab's times k/(k+1) (k = present labels); accuracy agrees. docs/evaluation.md
  explains why ftlab keeps the bucket out of the class list.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ftlab.contract import UNPARSEABLE

LABELS = ("Allergy / Immunology", "Autopsy", "Bariatrics", "Cardiovascular / Pulmonary",
          "Chiropractic", "Consult - History and Phy.", "Cosmetic / Plastic Surgery", "Dentistry",
          "Dermatology", "Diets and Nutritions", "Discharge Summary", "Emergency Room Reports",
          "Endocrinology", "ENT - Otolaryngology", "Gastroenterology", "General Medicine",
          "Hematology - Oncology")


def static_predictions(unparseable: int, n: int = 300, seed: int = 7) -> tuple[list[str], list[str]]:
    """17 labels; 'Autopsy' never true (only predicted), 'Dentistry' never predicted, 'Bariatrics'
    neither; about 55% correct; the first ``unparseable`` answers are unparseable."""
    rng = np.random.default_rng(seed)
    true_pool = [x for x in LABELS if x not in ("Autopsy", "Bariatrics")]
    pred_pool = [x for x in LABELS if x not in ("Dentistry", "Bariatrics")]
    y_true = list(rng.choice(true_pool, n))
    y_pred = [t if (rng.random() < 0.55 and t != "Dentistry") else str(rng.choice(pred_pool))
              for t in y_true]
    for i in range(unparseable):
        y_pred[i] = UNPARSEABLE
    return [str(x) for x in y_true], y_pred


@pytest.mark.parametrize("unparseable", [0, 25])
def test_per_class_equals_sklearn_classification_report(unparseable):
    from sklearn.metrics import classification_report as sk_report
    from sklearn.metrics import f1_score

    from ftlab.metrics.classification import classification_report

    y_true, y_pred = static_predictions(unparseable)
    ours = classification_report(y_true, y_pred, LABELS)
    sk = sk_report(y_true, y_pred, labels=list(LABELS), output_dict=True, zero_division=0)
    for lab in LABELS:
        m = ours.per_class[lab]
        assert m.precision == pytest.approx(sk[lab]["precision"], abs=1e-12), lab
        assert m.recall == pytest.approx(sk[lab]["recall"], abs=1e-12), lab
        assert m.f1 == pytest.approx(sk[lab]["f1-score"], abs=1e-12), lab
        assert m.support == sk[lab]["support"], lab
    assert ours.per_class["Dentistry"].f1 == 0 and ours.per_class["Autopsy"].support == 0
    # macro: sklearn over the labels present in truth or predictions (Bariatrics is neither)
    present = [x for x in LABELS if x in set(y_true) | set(y_pred)]
    assert "Bariatrics" not in present and len(present) == 16
    assert ours.macro_f1 == pytest.approx(f1_score(y_true, y_pred, labels=present, average="macro",
                                                   zero_division=0), abs=1e-12)
    # micro pools the configured labels: with unparseable answers it is sklearn's "micro avg"
    key = "micro avg" if unparseable else "accuracy"
    sk_micro = sk[key]["f1-score"] if unparseable else sk["accuracy"]
    assert ours.micro_f1 == pytest.approx(sk_micro, abs=1e-12), key
    assert ours.weighted_f1 == pytest.approx(f1_score(y_true, y_pred, labels=present,
                                                      average="weighted", zero_division=0))


def _mlflow_evaluate(y_true, y_pred, tmp_path, monkeypatch):
    import mlflow
    import pandas as pd

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is ./mlruns
    df = pd.DataFrame({"truth": y_true, "pred": y_pred})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            result = mlflow.models.evaluate(data=df, predictions="pred", targets="truth",
                                            model_type="classifier",
                                            evaluator_config={"average": "macro",
                                                              "log_model_explainability": False})
    return result


def test_macro_equals_mlflow_evaluate_without_unparseable(tmp_path, monkeypatch):
    from ftlab.metrics.classification import classification_report

    y_true, y_pred = static_predictions(0)
    ours = classification_report(y_true, y_pred, LABELS)
    res = _mlflow_evaluate(y_true, y_pred, tmp_path, monkeypatch)
    m = res.metrics
    assert m["example_count"] == len(y_true)
    assert ours.macro_f1 == pytest.approx(m["f1_score"], abs=1e-12)
    assert ours.macro_precision == pytest.approx(m["precision_score"], abs=1e-12)
    assert ours.macro_recall == pytest.approx(m["recall_score"], abs=1e-12)
    assert ours.accuracy == pytest.approx(m["accuracy_score"], abs=1e-12)
    # MLflow's per-class table (one-vs-rest) agrees too, for every label it knows
    table = res.artifacts["per_class_metrics"].content.set_index("positive_class")
    assert set(table.index) == {x for x in LABELS if x != "Bariatrics"}
    for lab in table.index:
        assert ours.per_class[lab].f1 == pytest.approx(table.loc[lab, "f1_score"], abs=1e-12), lab
        assert ours.per_class[lab].precision == pytest.approx(table.loc[lab, "precision_score"],
                                                              abs=1e-12)
        assert ours.per_class[lab].recall == pytest.approx(table.loc[lab, "recall_score"], abs=1e-12)


def test_mlflow_counts_unparseable_as_a_class_ftlab_does_not(tmp_path, monkeypatch):
    from ftlab.metrics.classification import classification_report

    y_true, y_pred = static_predictions(25)
    ours = classification_report(y_true, y_pred, LABELS)
    m = _mlflow_evaluate(y_true, y_pred, tmp_path, monkeypatch).metrics
    k = sum(1 for x in LABELS if x in set(y_true) | set(y_pred))  # present real labels: 16
    assert ours.accuracy == pytest.approx(m["accuracy_score"], abs=1e-12)
    assert m["f1_score"] == pytest.approx(ours.macro_f1 * k / (k + 1), abs=1e-12)
    assert m["recall_score"] == pytest.approx(ours.macro_recall * k / (k + 1), abs=1e-12)
    assert m["f1_score"] < ours.macro_f1
    assert ours.unparseable == 25 and ours.unparseable_rate == pytest.approx(25 / 300)
