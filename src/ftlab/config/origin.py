"""Where a config key was set: the command line, or the line of an experiment file.

A composed config no longer knows which file gave each value, so a refusal at composition
(``eval.metrics`` names no registered metric, ``eval.task`` is one the chosen ``backend`` does not
support) would name the key but not the place to fix it. :func:`where_set` finds it the way Hydra
composed it: an override on the command line wins; else the experiment (``+experiment=NAME``),
its own body first, then the experiments its defaults list names, last first (Hydra puts
``_self_`` last by default). A config group such as ``backend`` is found in a defaults list
(``override /backend: NAME``). YAML is read with line marks (``yaml.compose``), never executed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence


def _shown(path: Path) -> str:
    from ftlab.paths import project_root

    real = path.resolve()
    try:
        return str(real.relative_to(project_root().resolve()))
    except (ValueError, Exception):
        return str(real)


def _experiment_file(name: str, config_dir: Optional[str]) -> Optional[Path]:
    from ftlab.paths import project_root

    dirs = ([Path(config_dir).expanduser() / "experiment"] if config_dir else []) + \
        [project_root() / "conf" / "experiment"]
    for d in dirs:
        for suffix in (".yaml", ".yml"):
            if (d / f"{name}{suffix}").is_file():
                return d / f"{name}{suffix}"
    return None


def _mapping_get(node, key: str):
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return None, None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None, None


def _in_experiment(key: str, name: str, config_dir: Optional[str], seen: set) -> Optional[str]:
    import yaml

    path = _experiment_file(name, config_dir)
    if path is None or path in seen:
        return None
    seen.add(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return None
    _, defaults = _mapping_get(root, "defaults")
    entries = defaults.value if isinstance(defaults, yaml.SequenceNode) else []
    if "." not in key:  # a config group: its entry in the defaults list
        for entry in entries:
            for k, _v in (entry.value if isinstance(entry, yaml.MappingNode) else []):
                if k.value.replace("override", "").strip().lstrip("/") == key:
                    return f"{_shown(path)}:{k.start_mark.line + 1}"
    else:
        node, found = root, None
        for part in key.split("."):
            found, node = _mapping_get(node, part)
            if found is None:
                break
        if found is not None:
            return f"{_shown(path)}:{found.start_mark.line + 1}"
    for entry in reversed(entries):  # the experiments it extends (plain names in its defaults list)
        if isinstance(entry, yaml.ScalarNode) and entry.value != "_self_":
            got = _in_experiment(key, entry.value, config_dir, seen)
            if got:
                return got
    return None


def where_set(key: str, overrides: Sequence[str], config_dir: Optional[str] = None) -> Optional[str]:
    """``the command line (eval.metrics=[rogue])``, ``experiments/x.yaml:12``, or None (a default)."""
    experiment = None
    for o in reversed(list(overrides)):
        k, sep, _ = o.lstrip("+~").partition("=")
        if sep and k == key:
            return f"the command line ({o})"
        if sep and k == "experiment" and experiment is None:
            experiment = o.partition("=")[2]
    if experiment:
        return _in_experiment(key, experiment, config_dir, set())
    return None


def locate(keys: Sequence[str], overrides: Sequence[str], config_dir: Optional[str] = None) -> str:
    """`` (eval.task is set at experiments/x.yaml:17; backend is set at the command line (backend=NAME))``
    for the keys that were set somewhere, else ''."""
    found = [(k, where_set(k, overrides, config_dir)) for k in keys]
    parts = [f"{k} is set at {w}" for k, w in found if w]
    return f" ({'; '.join(parts)})" if parts else ""
