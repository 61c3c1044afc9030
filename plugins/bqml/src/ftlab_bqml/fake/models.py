"""The fake's "remote models": deterministic, prompt-dependent answers.

* ``BaseModel``: an untuned endpoint. It reads the label list out of the prompt (lines such as
  ``- Dentistry``) and answers with the label whose own words occur most often in the rest of the
  prompt: a weak keyword heuristic, so tuning has room to help.
* ``TunedModel``: multinomial naive Bayes over the words of the tuning table's prompts, trained at
  ``CREATE MODEL`` time on the (prompt, label) rows; it answers a training label.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

_WORD = re.compile(r"[a-z]{3,}")
_LABEL_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.+?)\s*$")
_STOP = {"and", "the", "for", "with", "reports", "report", "summary", "surgery", "medicine", "general",
         "phy", "history", "consult"}


def split_prompt(prompt: str) -> tuple[list[str], str]:
    """(labels listed in the prompt, the rest of the prompt)."""
    labels, rest = [], []
    for line in (prompt or "").splitlines():
        m = _LABEL_LINE.match(line)
        if m and len(m.group(1)) <= 60:
            labels.append(m.group(1))
        else:
            rest.append(line)
    return labels, "\n".join(rest)


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


class BaseModel:
    kind = "base"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def answer(self, prompt: str) -> str:
        labels, text = split_prompt(prompt)
        counts = Counter(w[:5] for w in words(text))
        best, best_score = None, 0
        for label in labels:
            keys = {w[:5] for w in words(label) if w not in _STOP}
            score = sum(counts[k] for k in keys) / (len(keys) or 1)
            if score > best_score:
                best, best_score = label, score
        return best if best else "I cannot determine the category from this text."


class TunedModel:
    kind = "tuned"

    def __init__(self, endpoint: str, rows: list[tuple[str, str]], options: dict) -> None:
        self.endpoint = endpoint
        self.options = options
        self.n_rows = len(rows)
        self.doc_count: Counter = Counter()
        self.word_counts: dict[str, Counter] = defaultdict(Counter)
        vocab = set()
        for prompt, label in rows:
            _, text = split_prompt(prompt)
            ws = words(text)
            self.doc_count[label] += 1
            self.word_counts[label].update(ws)
            vocab.update(ws)
        self.vocab = len(vocab) or 1
        self.totals = {lab: sum(c.values()) for lab, c in self.word_counts.items()}

    def answer(self, prompt: str) -> str:
        _, text = split_prompt(prompt)
        ws = words(text)
        n = sum(self.doc_count.values())
        best, best_lp = None, -math.inf
        for label in sorted(self.doc_count):
            wc, total = self.word_counts[label], self.totals[label]
            lp = math.log(self.doc_count[label] / n)
            lp += sum(math.log((wc[w] + 1.0) / (total + self.vocab)) for w in ws)
            if lp > best_lp:
                best, best_lp = label, lp
        return best or ""


def classification_rows(truth: list[str], predicted: list[str], n_ok: int) -> list[dict]:
    """ML.EVALUATE classification output: one row per true label, exact match after trimming.

    The numbers come from the host's evaluator (an answer that is no true label counts against its
    row's label and for none), so the fake has no F1 code of its own."""
    from ftlab.contract import UNPARSEABLE
    from ftlab.metrics.classification import classification_report

    status = '{"num_successful_rows":%d,"num_total_rows":%d}' % (n_ok, len(truth))
    labels = sorted(set(truth))
    pred = [p.strip() if p.strip() in labels else UNPARSEABLE for p in predicted]
    report = classification_report(truth, pred, labels)
    return [{"label": label, "precision": m.precision, "recall": m.recall, "f1_score": m.f1,
             "evaluation_status": status} for label, m in report.per_class.items()]
