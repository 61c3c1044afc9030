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
    others = [n for n, _ in plugins.pm.list_name_plugin()
              if n not in {r[1] for r in plugins.plugin_table()}]
    if others:
        print("other plugins: " + ", ".join(sorted(others)))
    return 0
