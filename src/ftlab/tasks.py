"""Task types: what a row's target is (a label, a reference text, acceptable answers) and what scores it.

``eval.task`` names one; tasks are registered through the ``ftlab_register_tasks`` hook (ftlab's
own four by its default plugin, exactly as a third-party plugin adds one). Classification is scored
by :mod:`ftlab.metrics.classification` (per-class P/R/F1, lenient variants, the confusion matrix);
a generation task by its registered text metrics (:mod:`ftlab.metrics.text`), per example and over
the corpus. The evaluator, the paired comparison, the closing table, the report and the sweep
objective read the task, never a task's name.
"""

from __future__ import annotations

from dataclasses import dataclass

CLASSIFICATION = "classification"


@dataclass(frozen=True)
class TaskType:
    """One value of ``eval.task``."""

    name: str
    """``eval.task`` value, e.g. ``summarization``."""
    generative: bool
    """True: the target is text (no closed label set, scored by ``metrics``); False: a label."""
    metrics: tuple[str, ...] = ()
    """Registered text metrics scoring it by default (``eval.metrics`` replaces the list)."""
    headline: tuple[str, ...] = ("macro_f1",)
    """Metric keys the closing table, the paired comparison and the report lead with; the first is the
    default sweep objective (``eval/<stage>/<split>/<key>``)."""
    bigquery: str = ""
    """BigQuery ML's name for it (``TASK_TYPE`` of ML.EVALUATE, ``EVALUATION_TASK`` of tuning)."""
    multiple_references: bool = False
    """A row may carry several acceptable targets (question answering: a list of answers)."""
    description: str = ""

    @property
    def target(self) -> str:
        """What the data loader reads as each row's target: ``label``, ``text`` or ``answers``."""
        if not self.generative:
            return "label"
        return "answers" if self.multiple_references else "text"


BUILTIN_TASKS = (
    TaskType(CLASSIFICATION, False, headline=("macro_f1", "lenient/macro_f1", "accuracy"),
             bigquery="CLASSIFICATION", description="a label from a closed set (data.labels)"),
    TaskType("text_generation", True, ("rouge", "bleu", "chrf", "bleu4"),
             ("rougeL_f1", "bleu4", "rouge1_f1", "rouge2_f1", "chrf"), "TEXT_GENERATION",
             description="free text scored against one reference"),
    TaskType("summarization", True, ("rouge", "bleu", "chrf", "bleu4"),
             ("rougeL_f1", "rougeLsum_f1", "rouge1_f1", "rouge2_f1", "bleu4"), "SUMMARIZATION",
             description="a summary scored against its reference summary"),
    TaskType("question_answering", True, ("exact_match", "token_f1"), ("exact_match", "token_f1"),
             "QUESTION_ANSWERING", multiple_references=True,
             description="a short answer scored against a list of acceptable answers"),
)
