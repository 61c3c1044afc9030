"""The closing table printed at the end of a run."""

from __future__ import annotations

from typing import Optional

from rich.console import Console
from rich.table import Table

from ftlab.evaluate import Scored


def _f(x: Optional[float]) -> str:
    return "" if x is None else f"{x:.3f}"


def _d(x: Optional[float]) -> str:
    return "" if x is None else f"{x:+.3f}"


def closing_table(base: Optional[Scored], tuned: Optional[Scored], labels, comparison=None,
                  console: Optional[Console] = None) -> None:
    console = console or Console()
    split = (tuned or base).split
    t = Table(title=f"ftlab: {split} split, base vs tuned (strict)", show_lines=False)
    t.add_column("label")
    t.add_column("support", justify="right")
    t.add_column("base F1", justify="right")
    t.add_column("tuned F1", justify="right")
    t.add_column("delta", justify="right")
    first = base or tuned
    for lab in labels:
        b = base.strict.per_class[lab].f1 if base else None
        u = tuned.strict.per_class[lab].f1 if tuned else None
        t.add_row(lab, str(first.strict.per_class[lab].support), _f(b), _f(u),
                  _d(u - b) if b is not None and u is not None else "")
    t.add_section()
    rows = [("macro-F1", "macro_f1"), ("micro-F1", "micro_f1"), ("weighted-F1", "weighted_f1"),
            ("accuracy", "accuracy"), ("unparseable rate", "unparseable_rate")]
    for name, key in rows:
        b = base.strict.headline()[key] if base else None
        u = tuned.strict.headline()[key] if tuned else None
        t.add_row(name, str(first.strict.n), _f(b), _f(u),
                  _d(u - b) if b is not None and u is not None else "")
    if (base and base.lenient) or (tuned and tuned.lenient):
        b = base.lenient.macro_f1 if base and base.lenient else None
        u = tuned.lenient.macro_f1 if tuned and tuned.lenient else None
        t.add_row("macro-F1 (lenient)", str(first.strict.n), _f(b), _f(u),
                  _d(u - b) if b is not None and u is not None else "")
        b = base.lenient.accuracy if base and base.lenient else None
        u = tuned.lenient.accuracy if tuned and tuned.lenient else None
        t.add_row("accuracy (lenient)", str(first.strict.n), _f(b), _f(u),
                  _d(u - b) if b is not None and u is not None else "")
    console.print(t)
    if comparison is not None:
        c = comparison
        console.print(f"macro-F1 delta {c.macro_f1_delta:+.3f}, {int(c.confidence * 100)}% paired "
                      f"bootstrap CI [{c.ci_low:+.3f}, {c.ci_high:+.3f}] ({c.resamples} resamples); "
                      f"McNemar exact p = {c.mcnemar_p:.3g} ({c.only_a_correct} only-base vs "
                      f"{c.only_b_correct} only-tuned correct)")


def cv_table(result, headline=None, console: Optional[Console] = None) -> None:
    """Per-fold headline metrics (strict and lenient macro-F1 and accuracy, or a generation task's
    ``headline`` keys), their mean ± standard error, the pooled out-of-fold values (a
    :class:`ftlab.cv.CVResult`)."""
    console = console or Console()
    keys = [("macro-F1", "macro_f1"), ("accuracy", "accuracy"), ("macro-F1 (lenient)", "lenient/macro_f1"),
            ("accuracy (lenient)", "lenient/accuracy")] if headline is None else [(k, k) for k in headline]
    keys = [(n, k) for n, k in keys if k in result.per_fold[0]]
    k = len(result.per_fold)
    t = Table(title=f"ftlab: {k}-fold cross-validation on the training split", show_lines=False)
    t.add_column("fold")
    for name, _ in keys:
        t.add_column(name, justify="right")
    for i, f in enumerate(result.per_fold, 1):
        t.add_row(str(i), *(_f(f[key]) for _, key in keys))
    t.add_section()
    s = result.summary
    t.add_row("mean±s.e.", *(f"{s[key + '_mean']:.3f}±{s[key + '_stderr']:.3f}" for _, key in keys))
    t.add_row("out-of-fold", *(_f(result.oof.get(key)) for _, key in keys))
    console.print(t)


def text_table(base, tuned, keys, comparison=None, console: Optional[Console] = None) -> None:
    """A generation task's closing table: each headline metric base, tuned, delta with its paired
    bootstrap interval and per-example wins / ties / losses (``comparison``: key → TextComparison)."""
    console = console or Console()
    first = base or tuned
    t = Table(title=f"ftlab: {first.split} split, base vs tuned ({len(first.items)} examples)")
    for col in ("metric", "base", "tuned", "delta", "95% CI", "W/T/L"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    hb = base.headline() if base else {}
    ht = tuned.headline() if tuned else {}
    for key in [k for k in keys if k in first.corpus] + ["empty_rate", "mean_output_words"]:
        b, u = hb.get(key), ht.get(key)
        c = (comparison or {}).get(key)
        t.add_row(key, _f(b), _f(u), _d(u - b) if b is not None and u is not None else "",
                  f"[{c.ci_low:+.3f},{c.ci_high:+.3f}]" if c else "",
                  f"{c.wins}/{c.ties}/{c.losses}" if c else "")
    console.print(t)
