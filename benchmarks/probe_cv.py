"""What the frozen model's features are worth, selected without the eval split (issue 17).

The default recipe's head reads frozen document means; which layers, how much of the transcript,
how strong the regularisation and whether TF-IDF features should be fused into the head are all
choices that must be made on the training rows only. This script makes them cheaply: it encodes
every transcript once with the frozen model (document means of several layers, over the first 1024
tokens and over the whole transcript), then scores linear probes on those features under the same
5-fold grouped, stratified CV as ``make results`` (:func:`ftlab.cv.assign_folds`, same seed and
grouping, so every row here is paired fold by fold with the tfidf floor), with strict and lenient
macro-F1 computed as the evaluator does (the mean over labels present in truth or prediction).
The eval split is scored for the floor and the chosen row only, and nothing is chosen on it.

    python benchmarks/probe_cv.py [--model smollm2_135m] [--features FILE] [--output FILE]

The features are cached in ``outputs/probe_cv/<model>.pt`` (about 10 min for SmolLM2-135M on 2
cores); a second call only refits the probes (seconds). Probes are scikit-learn's
``LogisticRegression`` (balanced class weights) on per-layer parameter-free layer-normed means, the
features lora_cls's head reads (layer numbers are depths in SmolLM2-135M's 30 layers, scaled to
another model's depth); fusion stacks them, scaled, beside the floor's TF-IDF matrix in the
floor's ``LinearSVC``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [4, 8, 12, 16, 20, 24, 27, 30]
HEAD_TOKENS = 1024
FLOOR = {"clf": "svc", "C": 0.1, "tfidf": 1.0}
ROWS = [  # name, probe spec; "kind": first1024 (what lora_cls reads today) or full (whole transcript)
    ("tfidf floor (LinearSVC C=0.1, min_df=5)", FLOOR),
    *[(f"probe, final layer, C={c}", {"clf": "lr", "C": c, "layers": [30]}) for c in (0.1, 1.0, 10.0)],
    *[(f"probe, layer 24, C={c}", {"clf": "lr", "C": c, "layers": [24]}) for c in (0.1, 1.0)],
    *[(f"probe, layers 8+24+30, C={c}", {"clf": "lr", "C": c, "layers": [8, 24, 30]}) for c in (0.1, 1.0, 10.0)],
    ("probe, 8 layers (4..30), C=1", {"clf": "lr", "C": 1.0, "layers": LAYERS}),
    ("probe, layers 8+24+30, whole transcript, C=1", {"clf": "lr", "C": 1.0, "layers": [8, 24, 30], "kind": "full"}),
    *[(f"tfidf + layers 8+24+30 fused (scale {s})", {**FLOOR, "layers": [8, 24, 30], "dscale": s})
      for s in (0.02, 0.05)],
    ("tfidf + final layer fused (scale 0.05)", {**FLOOR, "layers": [30], "dscale": 0.05}),
]


def load(model: str):
    from ftlab.data.load import load_data
    from ftlab.ranks import compose_typed

    cfg = compose_typed(["+experiment=mtsamples17_lora_local", f"model={model}"])
    data = load_data(cfg.data, ["eval"], True)
    return cfg, data.splits["train"].examples, data.splits["eval"].examples, list(data.labels)


def encode(cfg, splits: dict, path: Path) -> dict:
    """Document means of :data:`LAYERS` per split: first 1024 tokens, and the whole transcript."""
    import torch

    from ftlab_local_peft import loading
    from ftlab_local_peft.device import make_runtime
    from ftlab_local_peft.frozen import document_means

    rt, _ = make_runtime(cfg.backend)
    tok = loading.load_tokenizer(cfg.model, cache=cfg.backend.model_cache)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = loading.load_model(cfg.model, cfg.backend, rt.device, len(tok), tok, "none", rt.amp)
    n_layers = model.config.num_hidden_layers  # LAYERS are depths of SmolLM2's 30: scale to this model's
    layers = [max(1, round(li * n_layers / LAYERS[-1])) for li in LAYERS]
    out: dict = {"layers": LAYERS}
    for name, exs in splits.items():
        ids = [tok(ex.text, add_special_tokens=False)["input_ids"] for ex in exs]
        t0 = time.perf_counter()
        head = document_means(model, [i[:HEAD_TOKENS] for i in ids], 512, tok.pad_token_id, rt, layers=layers)
        rest = document_means(model, [i[HEAD_TOKENS:] for i in ids], 512, tok.pad_token_id, rt, layers=layers)
        n1 = torch.tensor([min(len(i), HEAD_TOKENS) for i in ids], dtype=torch.float)
        n2 = torch.tensor([max(len(i) - HEAD_TOKENS, 0) for i in ids], dtype=torch.float)
        full = (head * n1[:, None] + rest * n2[:, None]) / (n1 + n2).clamp(min=1)[:, None]
        out[name] = {"first1024": head, "full": full}
        print(f"{name}: {len(exs)} documents encoded in {time.perf_counter() - t0:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def macro_f1s(y, pred, exs) -> tuple[float, float]:
    """(strict, lenient) macro-F1 through :mod:`ftlab.metrics.classification`, the evaluator's own code."""
    from ftlab.metrics.classification import classification_report, lenient_truth

    labels = sorted(set(y) | set(pred))
    strict = classification_report(y, pred, labels).macro_f1
    y_len = lenient_truth(y, pred, [e.acceptable for e in exs])
    lenient = classification_report(y_len, pred, sorted(set(y_len) | set(pred))).macro_f1
    return float(strict), float(lenient)


def _ln(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(1, keepdims=True)
    return x / (x.std(1, keepdims=True) + 1e-5)


def dense(feats: dict, split: str, spec: dict) -> np.ndarray:
    f = feats[split][spec.get("kind", "first1024")].numpy()
    width = f.shape[1] // len(feats["layers"])
    blocks = [feats["layers"].index(li) for li in spec["layers"]]
    return np.hstack([_ln(f[:, b * width:(b + 1) * width]) for b in blocks])


def fit_predict(spec: dict, train, test, d_train, d_test, seed: int = 0):
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    parts_a, parts_b = [], []
    if spec.get("tfidf"):
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=5, sublinear_tf=True)
        parts_a.append(vec.fit_transform([e.text for e in train]))
        parts_b.append(vec.transform([e.text for e in test]))
    if d_train is not None:
        s = spec.get("dscale", 1.0)
        parts_a.append(sparse.csr_matrix(d_train * s))
        parts_b.append(sparse.csr_matrix(d_test * s))
    xa, xb = sparse.hstack(parts_a).tocsr(), sparse.hstack(parts_b).tocsr()
    if spec["clf"] == "svc":
        clf = LinearSVC(C=spec["C"], class_weight="balanced", max_iter=5000, random_state=seed)
    else:
        clf = LogisticRegression(C=spec["C"], class_weight="balanced", max_iter=3000)
    clf.fit(xa, [e.label for e in train])
    return list(clf.predict(xb))


def cv_scores(spec: dict, train, folds: np.ndarray, feats) -> np.ndarray:
    """[k, 2] strict and lenient macro-F1 per fold."""
    d = dense(feats, "train", spec) if spec.get("layers") else None
    rows = []
    for k in range(int(folds.max()) + 1):
        a, b = np.where(folds != k)[0], np.where(folds == k)[0]
        tr, te = [train[i] for i in a], [train[i] for i in b]
        pred = fit_predict(spec, tr, te, d[a] if d is not None else None, d[b] if d is not None else None)
        rows.append(macro_f1s([e.label for e in te], pred, te))
    return np.array(rows)


def mean_se(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return v.mean(0), v.std(0, ddof=1) / np.sqrt(len(v))


def table(results: list[tuple[str, np.ndarray, tuple | None]]) -> str:
    """Markdown: CV mean ± SE, the paired difference to the first row (the floor), eval if scored."""
    floor = results[0][1]
    lines = ["| features and probe | CV strict | CV lenient | Δ strict vs floor (paired) "
             "| Δ lenient vs floor (paired) | eval strict / lenient |", "|---|---|---|---|---|---|"]
    for name, cv, ev in results:
        m, se = mean_se(cv)
        cells = [name, f"{m[0]:.3f} ± {se[0]:.3f}", f"{m[1]:.3f} ± {se[1]:.3f}"]
        if cv is floor:
            cells += ["-", "-"]
        else:
            dm, dse = mean_se(cv - floor)
            cells += [f"{dm[j]:+.3f} ± {dse[j]:.3f}" + (" (> 2 SE)" if dm[j] > 2 * dse[j] else "") for j in (0, 1)]
        cells.append(f"{ev[0]:.3f} / {ev[1]:.3f}" if ev else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import torch

    from ftlab.cv import assign_folds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2_135m", help="a conf/model entry (default: the embedded model)")
    ap.add_argument("--features", type=Path, default=None, help="feature cache (default outputs/probe_cv/<model>.pt)")
    ap.add_argument("--output", type=Path, default=None,
                    help="table (default benchmarks/probe_cv.md; probe_cv_<model>.md for another model)")
    args = ap.parse_args(argv)
    if args.output is None:
        suffix = "" if args.model == "smollm2_135m" else f"_{args.model}"
        args.output = ROOT / "benchmarks" / f"probe_cv{suffix}.md"
    cfg, train, evals, _ = load(args.model)
    path = args.features or ROOT / "outputs" / "probe_cv" / f"{args.model}.pt"
    t0 = time.perf_counter()
    feats = torch.load(path) if path.is_file() else encode(cfg, {"train": train, "eval": evals}, path)
    encode_s = time.perf_counter() - t0
    folds = np.array(assign_folds(train, 5, 0, "text"))
    results = []
    for name, spec in ROWS:
        cv = cv_scores(spec, train, folds, feats)
        results.append((name, cv, None))
        print(f"{name}: CV {cv.mean(0).round(3).tolist()}", flush=True)
    # eval: the floor and the best probe by CV strict mean (a choice made on train only)
    best = max(range(1, len(ROWS)), key=lambda i: results[i][1][:, 0].mean())
    for i in (0, best):
        spec = ROWS[i][1]
        d_tr = dense(feats, "train", spec) if spec.get("layers") else None
        d_ev = dense(feats, "eval", spec) if spec.get("layers") else None
        pred = fit_predict(spec, train, evals, d_tr, d_ev)
        results[i] = (results[i][0], results[i][1], macro_f1s([e.label for e in evals], pred, evals))
    text = (f"# Frozen features under CV (`python benchmarks/probe_cv.py --model {args.model}`)\n\n"
            f"5-fold grouped, stratified CV on the {len(train)} training rows, the folds of `make results` "
            "(mean ± standard error over folds; Δ: paired per-fold difference to the floor). Document "
            "means of the frozen model, layer-normed per layer; eval scored for the floor and the row "
            f"with the best CV strict mean only. Features: {encode_s:.0f} s "
            f"({'read from cache' if encode_s < 60 else 'encoded'}).\n\n" + table(results))
    print(text)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
