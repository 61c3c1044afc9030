"""The host's own default plugin: registered like any third-party plugin."""

from __future__ import annotations

from ftlab import hookimpl


@hookimpl
def ftlab_register_configs(store):
    """Nothing extra yet: the host's own groups live in conf/ and ftlab.config."""


@hookimpl
def ftlab_register_tasks(register):
    """The four task types of BigQuery ML's ML.EVALUATE (docs/evaluation.md, "Tasks")."""
    from ftlab.tasks import BUILTIN_TASKS

    for task in BUILTIN_TASKS:
        register(task)


@hookimpl
def ftlab_register_metrics(register):
    """ROUGE (rouge-score), BLEU, chrF and bleu4 (sacrebleu), exact match and token F1 (SQuAD), and
    BERTScore (usable with the ``bertscore`` extra)."""
    from ftlab.metrics.bertscore import BERTSCORE
    from ftlab.metrics.text import BUILTIN

    for metric in (*BUILTIN, BERTSCORE):
        register(metric)
