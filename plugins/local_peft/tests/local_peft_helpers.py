"""Helpers for the local_peft tests: tiny configs, generated examples, a recording RunContext."""

from __future__ import annotations

import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LABELS = ["Cardiology", "Neurology", "Orthopedics", "Dermatology"]
WORDS = {
    "Cardiology": ["chest", "pain", "heart", "palpitations", "ecg", "murmur"],
    "Neurology": ["headache", "seizure", "numbness", "stroke", "mri", "tremor"],
    "Orthopedics": ["fracture", "knee", "bone", "cast", "xray", "sprain"],
    "Dermatology": ["rash", "skin", "itch", "lesion", "mole", "eczema"],
}
FILLER = ["the", "patient", "was", "seen", "today", "with", "history", "of", "and", "no", "fever"]

def make_examples(n: int, split: str = "train", seed: int = 0):
    from ftlab.contract import Example

    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        words = [rng.choice(WORDS[label] if rng.random() < 0.4 else FILLER)
                 for _ in range(rng.randint(6, 20))]
        out.append(Example(id=f"{split}-{i}", text=" ".join(words), label=label))
    return tuple(out)


def make_cfg(train=None, backend=None, model=None, prompt=None, eval=None, seed: int = 0):
    """A composed RunConfig object (tiny_random model) with the given group overrides."""
    from omegaconf import OmegaConf

    from ftlab.config import RunConfig
    from ftlab_local_peft.plugin import LocalModelConfig, LocalPeftConfig

    base = OmegaConf.structured(RunConfig)
    over = {
        "seed": seed,
        "backend": OmegaConf.merge(OmegaConf.structured(LocalPeftConfig),
                                   {"progress": False, "dtype": "float32", "checkpoint_steps": 0,
                                    **(backend or {})}),
        "model": OmegaConf.merge(OmegaConf.structured(LocalModelConfig), {
            "source": "tiny_random", "name": "tiny",
            "tiny": {"vocab_size": 400, "hidden_size": 64, "num_layers": 2, "num_heads": 4,
                     "num_kv_heads": 2, "intermediate_size": 128, "seed": 0}, **(model or {})}),
        "data": {"labels": LABELS},
        "prompt": {"template": "Classify.\n{labels}\nText: {text}", "max_input_tokens": 64,
                   **(prompt or {})},
        "train": {"lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
                  "learning_rate": 3e-3, "batch_size": 4, "max_steps": 8, "logging_steps": 2,
                  "warmup_ratio": 0.0, "seed": 0, **(train or {})},
        "eval": eval or {},
    }
    return OmegaConf.to_object(OmegaConf.merge(base, over))


def make_prompt(cfg):
    from ftlab.prompt import make_prompt as mk

    return mk(cfg.prompt, cfg.data.labels)


class Recorder:
    """A RunContext that remembers logged metrics."""

    def __init__(self, run_dir):
        from ftlab.contract import RunContext

        self.rows = []
        self.tags: dict = {}
        self.ctx = RunContext(run_dir=run_dir, log_metrics=lambda m, step=None: self.rows.append((step, dict(m))),
                              set_tags=self.tags.update)


TRAIN_OVERRIDES = {
    "max_steps": 60, "learning_rate": 1e-2, "logging_steps": 10, "eval_loss": True,
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0,
             "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
}


class Trained:
    """One tiny model tuned once per test module (shared: training is the slow part)."""

    def __init__(self, root):
        from ftlab.contract import Decoding, TrainJob
        from ftlab_local_peft.backend import LocalPeftBackend

        (root / "run").mkdir()
        (root / "out").mkdir()
        self.cfg = make_cfg(train=TRAIN_OVERRIDES)
        self.recorder = Recorder(root / "run")
        self.backend = LocalPeftBackend(self.cfg, self.recorder.ctx)
        self.prompt = make_prompt(self.cfg)
        self.train_ex, self.eval_ex = make_examples(32), make_examples(12, "eval", seed=1)
        self.base_before = self.backend.predict(self.backend.base_model(), self.eval_ex, self.prompt,
                                                Decoding(batch_size=4))
        self.out_dir = root / "out"
        self.result = self.backend.train(TrainJob(train=self.train_ex, eval=self.eval_ex,
                                                  prompt=self.prompt, out_dir=self.out_dir))
