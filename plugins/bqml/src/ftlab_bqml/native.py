"""``ML.EVALUATE`` rows → the flat ``{key: float}`` the host logs as ``native/<stage>/<split>/<key>``.

Columns per task type (BigQuery ML reference, ``ML.EVALUATE`` output for remote models over LLMs):

- CLASSIFICATION: one row per label with ``precision``, ``recall``, ``f1_score`` (``f1`` accepted);
  flattened to ``per_class/<slug>/{precision,recall,f1}`` plus ``macro_f1``, the host's macro rule
  over the per-label F1s (the averaging BigQuery uses is not documented).
- TEXT_GENERATION: one row, ``bleu4_score``, ``rouge-l_precision``, ``rouge-l_recall``, ``rouge-l_f1``;
  SUMMARIZATION: the ROUGE-L three; QUESTION_ANSWERING: ``exact_match``. Column names are kept as
  BigQuery spells them, except that the reference's ``rouge-l_f1`` and the tutorial's
  ``rouge-l_f1_score`` both become ``rouge-l_f1_score``.
- every task: ``evaluation_status`` JSON → ``num_successful_rows``, ``num_total_rows``.
"""

from __future__ import annotations

import json

from ftlab.evaluate import slug  # the host's slug, so native keys match ftlab's

ALIASES = {"f1": "f1_score", "rouge-l_f1": "rouge-l_f1_score"}
"""Column spellings seen in BigQuery's docs → the one key ftlab logs."""


class NativeEvaluation(dict):
    """Flattened ``ML.EVALUATE`` metrics (``{key: float}``) plus the raw rows in ``.rows``."""

    rows: list = []


def _status(row: dict, out: dict) -> None:
    try:
        st = json.loads(row.get("evaluation_status") or "")
    except (TypeError, ValueError):
        return
    for k in ("num_successful_rows", "num_total_rows"):
        if isinstance(st, dict) and k in st:
            out[k] = float(max(out.get(k, 0.0), float(st[k])))


def flatten_evaluation(rows: list[dict]) -> dict[str, float]:
    """ML.EVALUATE rows → flat metrics (see the module doc for the keys)."""
    out: dict[str, float] = {}
    f1s = []
    for row in rows:
        _status(row, out)
        numeric = {ALIASES.get(k, k): float(val) for k, val in row.items()
                   if isinstance(val, (int, float)) and not isinstance(val, bool) and val == val}
        if row.get("label") is not None:
            base = f"per_class/{slug(str(row['label']))}"
            for k, name in (("precision", "precision"), ("recall", "recall"), ("f1_score", "f1")):
                if k in numeric:
                    out[f"{base}/{name}"] = numeric[k]
            if "f1_score" in numeric:
                f1s.append(numeric["f1_score"])
        else:
            out.update(numeric)
    if f1s:  # one row per label in the truth: the host's macro rule over BigQuery's per-label F1s
        import numpy as np

        from ftlab.metrics.classification import macro_average

        ones = np.ones(len(f1s))
        out["macro_f1"] = macro_average(np.asarray(f1s, dtype=float), ones, ones)
    return out
