"""The fake's "remote models": deterministic, prompt-dependent answers.

* ``BaseModel``: an untuned endpoint. A prompt that lists labels (lines such as ``- Dentistry``) is
  answered with the label whose own words occur most often in the rest of the prompt: a weak keyword
  heuristic, so tuning has room to help. Any other prompt (a generation task) is answered with the
  first 30 words of its longest line (the input text).
* ``TunedModel``: for classification, multinomial naive Bayes over the words of the tuning table's
  prompts, trained at ``CREATE MODEL`` time on the (prompt, label) rows; it answers a training label.
  For a generation task (``evaluation_task`` TEXT_GENERATION, SUMMARIZATION, QUESTION_ANSWERING, or
  UNSPECIFIED over prompts without a label list) it learns the references' median length in words and
  answers with that many leading words of the input, leaving out the template's words that open every
  training prompt's input line: tuning changes what it writes.

``classification_rows`` and ``generation_rows`` are ML.EVALUATE's output, computed with the host's
own metric implementations (:mod:`ftlab.metrics`), so the fake has no metric code of its own.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter, defaultdict

_WORD = re.compile(r"[a-z]{3,}")
_LABEL_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.+?)\s*$")
BASE_WORDS = 30
"""Words of the input an untuned model writes for a generation prompt."""
GENERATION_TASKS = ("TEXT_GENERATION", "SUMMARIZATION", "QUESTION_ANSWERING")
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


def split_rows(rows: list[dict], method: str, fraction) -> list[dict]:
    """The training part of a tuning table under DATA_SPLIT_METHOD (the rest is the service's own
    evaluation data). RANDOM holds out ``round(n x fraction)`` rows (0.2 when not given) by a hash of
    their id, deterministic as BigQuery's FARM_FINGERPRINT split; AUTO_SPLIT: under 500 rows none,
    up to 50,000 rows 20 %, above that 10,000 rows; NO_SPLIT keeps everything."""
    import hashlib

    n = len(rows)
    if method == "RANDOM":
        held = round(n * (0.2 if fraction is None else float(fraction)))
    elif method == "AUTO_SPLIT":
        held = 0 if n < 500 else (round(n * 0.2) if n <= 50_000 else 10_000)
    else:
        held = 0
    order = sorted(range(n), key=lambda i: hashlib.sha256(str(rows[i].get("id")).encode()).hexdigest())
    out = set(order[:held])
    return [r for i, r in enumerate(rows) if i not in out]


def lead(prompt: str, n: int, skip: int = 0) -> str:
    """``n`` words of the prompt's longest line (the input text of a one-line template), after its
    first ``skip`` words."""
    line = max((prompt or "").splitlines() or [""], key=len)
    return " ".join(line.split()[skip:skip + n])


def common_lead(prompts: list[str]) -> int:
    """How many leading words the longest lines of ``prompts`` share (a template's ``Transcript:``)."""
    lines = [max(p.splitlines() or [""], key=len).split() for p in prompts]
    n = 0
    while lines and all(len(w) > n for w in lines) and len({w[n] for w in lines}) == 1:
        n += 1
    return n


class BaseModel:
    kind = "base"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def answer(self, prompt: str) -> str:
        labels, text = split_prompt(prompt)
        if len(labels) < 2:
            return lead(prompt, BASE_WORDS)
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
        task = str(options.get("evaluation_task", "UNSPECIFIED")).upper()
        self.generative = task in GENERATION_TASKS or (
            task == "UNSPECIFIED" and bool(rows) and len(split_prompt(rows[0][0])[0]) < 2)
        self.words = max(1, round(statistics.median(len(label.split()) for _, label in rows))) if rows else 1
        """Generation: the references' median length in words, what the tuned model writes ..."""
        self.skip = common_lead([prompt for prompt, _ in rows]) if self.generative and len(rows) > 1 else 0
        """... after the words every training prompt's input line starts with (the template's)."""
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
        if self.generative:
            return lead(prompt, self.words, self.skip)
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


def _corpus(metric, predicted: list[str], truth: list[str]) -> dict[str, float]:
    """A host TextMetric's corpus values: its per-example statistics summed, then its own value rule."""
    summed: dict[str, list[float]] = {}
    for pred, ref in zip(predicted, truth):
        for key, st in metric.stats(pred, [ref]).items():
            summed[key] = [a + b for a, b in zip(summed.get(key, [0.0] * len(st)), st)]
    return {key: metric.value(key, st) for key, st in summed.items()}


def generation_rows(task: str, truth: list[str], predicted: list[str], n_ok: int) -> list[dict]:
    """ML.EVALUATE's one row for a generation task, with the columns BigQuery documents for it:
    TEXT_GENERATION ``bleu4_score`` + ROUGE-L, SUMMARIZATION ROUGE-L, QUESTION_ANSWERING ``exact_match``
    (the label column is the one reference). ROUGE-L is the host's rouge-score (stemmer on) averaged
    over rows, BLEU-4 the host's ``bleu4`` (sacrebleu corpus BLEU on a 0-1 scale), exact match the
    host's SQuAD-normalised one: the numbers ftlab computes from the same answers."""
    from ftlab.metrics.text import BLEU4, EXACT_MATCH, ROUGE

    row: dict = {}
    if task == "TEXT_GENERATION":
        row["bleu4_score"] = _corpus(BLEU4, predicted, truth)["bleu4"]
    if task in ("TEXT_GENERATION", "SUMMARIZATION"):
        rouge = _corpus(ROUGE, predicted, truth)
        row.update({"rouge-l_precision": rouge["rougeL_precision"], "rouge-l_recall": rouge["rougeL_recall"],
                    "rouge-l_f1": rouge["rougeL_f1"]})
    if task == "QUESTION_ANSWERING":
        row["exact_match"] = _corpus(EXACT_MATCH, predicted, truth)["exact_match"]
    row["evaluation_status"] = '{"num_successful_rows":%d,"num_total_rows":%d}' % (n_ok, len(truth))
    return [row]


GENERATION_COLUMNS = {
    "TEXT_GENERATION": ("bleu4_score", "rouge-l_precision", "rouge-l_recall", "rouge-l_f1"),
    "SUMMARIZATION": ("rouge-l_precision", "rouge-l_recall", "rouge-l_f1"),
    "QUESTION_ANSWERING": ("exact_match",),
}
"""ML.EVALUATE's FLOAT64 columns per generation task type (then ``evaluation_status``)."""
