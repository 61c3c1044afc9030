"""``ftlab plugins``: registered backends with the package and version providing each."""

from __future__ import annotations

from typing import Sequence


def main(args: Sequence[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from ftlab.plugins import get_plugins

    plugins = get_plugins()
    t = Table(title="ftlab backends")
    for col in ("backend", "plugin", "package", "version"):
        t.add_column(col)
    for row in plugins.plugin_table():
        t.add_row(*row)
    Console().print(t)
    print("capabilities (checked when a config is validated; docs/plugin_hooks.md):")
    for name, info in sorted(plugins.backends().items()):
        print(f"  {name}: {describe(info.capabilities)}")
        for key, how in (info.capabilities.train_keys or {}).items() if info.capabilities else ():
            print(f"    train.{key}: {how}")
    sources = plugins.model_sources()
    if sources:
        print("model sources (model.source; docs/config.md lists their keys):")
        for name, opt in sorted(sources.items()):
            print(f"  {name}: {opt.schema.__name__} (plugin {opt.plugin})")
            needs = (getattr(opt.schema, "REQUIRES", None) or {}).get(name)
            if needs:  # a source schema may say what it needs installed (extras, packages, a device)
                print(f"    needs: {needs}")
    others = [n for n, _ in plugins.pm.list_name_plugin()
              if n not in {r[1] for r in plugins.plugin_table()}]
    if others:
        print("other plugins: " + ", ".join(sorted(others)))
    return 0


def describe(caps) -> str:
    """One line: the declared values of each checked key, the fallbacks, native evaluation."""
    from ftlab.contract import CHECKED_KEYS

    if caps is None:
        return "not declared (nothing is checked; optional eval.decoding keys refused)"
    parts = []
    for key in CHECKED_KEYS:
        values = caps.supported(key)
        subs = [f"{f.requested} → {f.used}" for f in caps.fallbacks if f.key == key]
        parts.append(f"{key}: {', '.join(values) if values is not None else 'any'}"
                     + (f" (fallback {'; '.join(subs)})" if subs else ""))
    parts.append("train keys: " + (", ".join(caps.train_keys) if caps.train_keys is not None else "any"))
    parts.append("optional eval.decoding keys: " + (", ".join(caps.decoding_options) or "none"))
    if caps.native_evaluate:
        parts.append("native_evaluate")
    if caps.intermediate_values:  # what an Optuna search can prune on (docs/sweeps.md)
        parts.append("reports while training: " + ", ".join(caps.intermediate_values))
    return "; ".join(parts)
