"""Run a recorded run again from its record and compare the numbers (``ftlab replay RUN``).

The run's ``config.yaml`` is validated against today's schemas; every hash in its ``manifest.json``
(data files, prompt, label set, and a model file where the manifest has one) is checked against
what is on disk now, and a change is an error naming it unless ``allow_drift``. The replay is a new
run (its own folder and MLflow run, tagged ``ftlab.replay_of=<original run id>``); its metrics are
then compared key by key with the recorded ones. Wall-clock metrics (``time/*``, ``*_s``,
``*_per_s``) are left out of the comparison: they differ by nature.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Sequence

from ftlab.tracking.redact import MASK


class ReplayError(RuntimeError):
    """The run cannot be replayed as recorded (inputs changed, secrets not supplied, no record)."""


@dataclass
class ReplayResult:
    original_id: str
    run_dir: Path
    run_id: Optional[str]
    rows: list[tuple[str, Optional[float], Optional[float]]]
    """(metric, recorded, replayed) for every compared metric."""
    drift: list[str] = field(default_factory=list)
    """Inputs that changed (only with allow_drift)."""
    identity: list[str] = field(default_factory=list)
    """What the replay loaded that hashes differently from what the run loaded (``model.*sha256``:
    the weights as loaded, the tokenizer, the chat template); empty: the same."""
    runtime: list[str] = field(default_factory=list)
    """Where the replay ran differently (device, its name, dtype, quantisation): a warning, not a
    difference; numbers from another device or precision need not match to the last digit."""

    @property
    def differences(self) -> list[tuple[str, Optional[float], Optional[float]]]:
        return [r for r in self.rows if not _same(r[1], r[2])]


def _same(a: Optional[float], b: Optional[float]) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 * max(1.0, abs(a))


def _volatile(key: str) -> bool:
    return key.startswith("time/") or key.endswith(("_s", "_per_s"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def drift(manifest: dict, cfg: Any) -> list[str]:
    """What on disk no longer matches the manifest's hashes (empty: nothing changed)."""
    from ftlab.data import label_set_sha256
    from ftlab.prompt import make_prompt

    out = []
    files = [(f"data file of split {name!r}", d) for name, d in (manifest.get("data") or {}).items()]
    model = manifest.get("model") or {}
    if isinstance(model, dict) and model.get("path") and model.get("sha256"):
        files.append(("model file", model))
    for what, d in files:
        path = Path(d["path"])
        if not path.is_file():
            out.append(f"{what} {path} is gone")
        elif _sha256(path) != d["sha256"]:
            out.append(f"{what} {path} changed (sha256 {d['sha256'][:12]}… recorded)")
    if manifest.get("prompt_sha256"):
        if make_prompt(cfg.prompt, cfg.data.labels).sha256 != manifest["prompt_sha256"]:
            out.append("prompt: the template renders differently now (prompt_sha256 differs)")
    if manifest.get("label_set_sha256") and label_set_sha256(cfg.data.labels) != manifest["label_set_sha256"]:
        out.append("label set: differs from the recorded one")
    return out


def identity_changes(recorded: dict, replayed: dict) -> list[str]:
    """``model.*sha256`` entries both manifests have and that differ (the weights as loaded, …)."""
    a, b = recorded.get("model") or {}, replayed.get("model") or {}
    return [f"model.{k}: recorded {a[k][:12]}…, replayed {b[k][:12]}…" for k in sorted(a)
            if k.endswith("sha256") and k in b and a[k] != b[k]]


RUNTIME_KEYS = (".device", ".device_name", ".dtype", ".quantization")
"""Suffixes of the ``backend_runtime`` tags a replay compares (a backend prefixes them with its name)."""


def runtime_changes(recorded: dict, replayed: dict) -> list[str]:
    """The device / dtype tags of the manifests' ``backend_runtime`` sections that differ."""
    a, b = recorded.get("backend_runtime") or {}, replayed.get("backend_runtime") or {}
    return [f"{k}: recorded {a[k]!r}, replayed {b.get(k)!r}" for k in sorted(a)
            if k.endswith(RUNTIME_KEYS) and k in b and a[k] != b[k]]


def _masked(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [k for key, v in node.items() for k in _masked(v, f"{prefix}{key}.")]
    return [prefix[:-1]] if isinstance(node, str) and MASK in node else []


def replay(ref: str, overrides: Sequence[str] = (), allow_drift: bool = False,
           uri: Optional[str] = None, run_dir: Optional[Path] = None, plugins=None) -> ReplayResult:
    """Replay the run named by ``ref`` (run id or run folder); see the module docstring."""
    from omegaconf import OmegaConf

    from ftlab.config.compose import plain_config, validate
    from ftlab.paths import project_root
    from ftlab.runner import Run
    from ftlab.runs import find_run
    from ftlab.tracking.redact import redact_config

    rec = find_run(ref, uri)
    try:
        yaml_text, manifest = rec.text("config.yaml"), rec.json("manifest.json")
    finally:
        rec.cleanup()
    if yaml_text is None or manifest is None:
        raise ReplayError(f"run {rec.run_id} has no recorded config.yaml and manifest.json")
    plain = plain_config(yaml_text, resolve=False)
    plain["resume"] = None
    if overrides:
        plain = OmegaConf.to_container(OmegaConf.merge(plain, OmegaConf.from_dotlist(list(overrides))))
    masked = _masked(plain)
    if masked:
        raise ReplayError(f"the record masks {', '.join(masked)} (secrets are never recorded): "
                          f"supply them, e.g. ftlab replay {ref} {masked[0]}=VALUE")
    cfg = validate(plain, plugins)
    changed = drift(manifest, cfg)
    if changed and not allow_drift:
        raise ReplayError("the run's inputs changed since it was recorded:\n  " + "\n  ".join(changed)
                          + "\n(--allow-drift replays anyway and tags the replay with the drift)")
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    if run_dir is None:  # the recorded experiment name picks the folder: it must stay under outputs/
        from ftlab.contain import OutsideFolder, inside, safe_name

        try:
            run_dir = inside(project_root() / "outputs",
                             Path(safe_name(cfg.experiment, "the recorded experiment")) / f"replay-{stamp}",
                             f"run {rec.run_id}'s experiment")
        except OutsideFolder as exc:
            raise ReplayError(str(exc)) from None
    job = Run(cfg, OmegaConf.to_yaml(redact_config(plain)), Path(run_dir), plugins)
    job.extra_tags = {"ftlab.replay_of": rec.run_id,
                      **({"ftlab.replay_drift": "; ".join(changed)[:5000]} if changed else {})}
    job.execute()
    import json

    new_manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    identity = identity_changes(manifest, new_manifest)
    replayed = job.tracker.last_metrics
    keys = sorted(k for k in set(rec.metrics) | set(replayed) if not _volatile(k))
    rows = [(k, rec.metrics.get(k), replayed.get(k)) for k in keys]
    return ReplayResult(rec.run_id, Path(run_dir), job.tracker.run_id, rows, changed, identity,
                        runtime_changes(manifest, new_manifest))


HEADLINE = ("macro_f1", "accuracy", "unparseable_rate", "macro_f1_delta")


def table(result: ReplayResult) -> list[str]:
    """Recorded vs replayed: the headline metrics, then every metric that differs."""
    head = [r for r in result.rows if r[0].rsplit("/", 1)[-1] in HEADLINE and r[0].count("/") <= 3]
    diff = [r for r in result.differences if r not in head]

    def fmt(x: Optional[float]) -> str:
        return "—" if x is None else f"{x:.6f}"

    width = max([len(k) for k, _, _ in head + diff] + [6])
    lines = [f"{'metric':<{width}}  {'recorded':>10}  {'replayed':>10}  difference"]
    for k, a, b in head + diff:
        delta = "" if _same(a, b) else ("missing" if a is None or b is None else f"{b - a:+.6f}")
        lines.append(f"{k:<{width}}  {fmt(a):>10}  {fmt(b):>10}  {delta}")
    n, d = len(result.rows), len(result.differences)
    lines.append(f"{n} metrics compared (wall-clock ones left out): "
                 + ("all identical" if not d else f"{d} differ"))
    lines += [f"loaded differently: {x}" for x in result.identity]
    lines += [f"warning: ran on a different device or precision: {x}" for x in result.runtime]
    return lines
