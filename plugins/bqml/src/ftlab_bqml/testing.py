"""Test helpers for the bqml plugin and its fake BigQuery (used by plugins/bqml/tests)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ftlab.contract import Example
from ftlab.prompt import Prompt

PROJECT, DATASET = "test-project", "ftlab_ds"
TEMPLATE = ("Classify the medical transcript into exactly one specialty from this list:\n{labels}\n"
            "Transcript: {text}\nAnswer with the specialty only.")


def ftlab_command() -> list[str]:
    """The ``ftlab`` console script of this interpreter's environment (else the one on PATH)."""
    import shutil
    import sys

    exe = Path(sys.executable).with_name("ftlab")
    return [str(exe)] if exe.exists() else [shutil.which("ftlab") or "ftlab"]


def data_dir() -> Path:
    """data/mtsamples17 of the checkout ($FTLAB_DATA_DIR overrides)."""
    env = os.environ.get("FTLAB_DATA_DIR")
    if env:
        return Path(env)
    for base in [Path.cwd(), *Path(__file__).resolve().parents]:
        if (base / "data" / "mtsamples17" / "train.jsonl").is_file():
            return base / "data" / "mtsamples17"
    raise FileNotFoundError("data/mtsamples17 not found; set FTLAB_DATA_DIR")


def load_examples(split: str, n: int) -> tuple[Example, ...]:
    rows = [json.loads(line) for line in (data_dir() / f"{split}.jsonl").read_text().splitlines()[:n]]
    return tuple(Example(id=f"{split}-{i}", text=r["input_text"], label=r["output_text"]) for i, r in enumerate(rows))


def all_labels() -> list[str]:
    return sorted({json.loads(line)["output_text"] for line in (data_dir() / "train.jsonl").read_text().splitlines()})


def make_prompt() -> Prompt:
    return Prompt(template=TEMPLATE, labels=tuple(all_labels()), max_input_chars=2000)


def fast_backend_cfg(url: str, **kw):
    """A validated ``BqmlConfig`` with test-speed polling and retries."""
    from ftlab_bqml.plugin import BqmlConfig

    opts = dict(project=PROJECT, dataset=DATASET, api_endpoint=url, poll_interval_s=0.02,
                poll_max_interval_s=0.05, row_retry_backoff_s=0.01, http_retry_initial_s=0.01,
                http_retry_deadline_s=20.0, progress=False, max_output_tokens=32, temperature=0.0, top_p=1.0)
    opts.update(kw)
    return BqmlConfig(**opts)


def make_run_cfg(backend_cfg, **groups):
    """A RunConfig on ``backend_cfg``: classification of data/mtsamples17 unless ``groups`` (``eval=``,
    ``train=``, ``data=`` …) say otherwise."""
    from ftlab.config import DataConfig, RunConfig

    groups.setdefault("data", DataConfig(labels=all_labels()))
    return RunConfig(backend=backend_cfg, **groups)


SUMMARIZE_TEMPLATE = ("Write the one-line description of this medical transcript.\n\nTranscript: {text}")
"""A generation prompt (no {labels}): the answer is free text scored against the reference."""


def load_summaries(split: str, n: int) -> tuple[Example, ...]:
    """The first ``n`` rows of data/mtsamples_summarize/<split>.jsonl: transcript → its description,
    as generation Examples (``label`` empty, the description the one reference)."""
    path = data_dir().parent / "mtsamples_summarize" / f"{split}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()[:n]]
    return tuple(Example(id=f"{split}-{i}", text=r["input_text"], label="", references=(r["output_text"],))
                 for i, r in enumerate(rows))


def generation_prompt(template: str = SUMMARIZE_TEMPLATE) -> Prompt:
    return Prompt(template=template, labels=(), max_input_chars=2000)


def host_report(prompt: Prompt, examples, predictions):
    """The host's strict report (:func:`ftlab.metrics.classification.classification_report`) of raw
    answers parsed by the host's parser: the tests score bqml exactly as a run does."""
    from ftlab.metrics.classification import classification_report

    pred = [prompt.parse(p.raw_text) for p in predictions.items]
    return classification_report([ex.label for ex in examples], pred, prompt.labels)
