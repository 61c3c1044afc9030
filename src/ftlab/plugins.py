"""The plugin manager and its typed facade. Only this module touches ``pm.hook``.

Plugins come from entry points in group ``ftlab`` and from ``DEFAULT_PLUGINS`` (registered the same
way). Environment switches: ``FTLAB_LOAD_PLUGINS=a,b`` loads only those entry points,
``FTLAB_DISABLE_PLUGINS=a,b`` blocks them, ``FTLAB_TRACE_PLUGINS=1`` prints every hook call.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import pluggy

from ftlab import hookspecs
from ftlab.contract import Capabilities

DEFAULT_PLUGINS: tuple[str, ...] = ("ftlab.builtin",)
ENTRY_POINT_GROUP = "ftlab"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PluginError(Exception):
    """A plugin is missing, broken or registers something invalid."""


@dataclass(frozen=True)
class BackendInfo:
    name: str
    factory: Callable[..., Any]
    schema: type
    plugin: str
    """Plugin (entry point) name that registered it."""
    distribution: str
    """Package that provides it, e.g. ``ftlab-tfidf``."""
    version: str
    capabilities: Optional[Capabilities] = None
    """What the backend declared it supports; ``None`` = nothing declared (nothing is checked)."""
    distributions: tuple[str, ...] = ()
    """Packages whose versions a run on this backend records in its manifest (its own is always)."""


@dataclass(frozen=True)
class ConfigOption:
    """One ``store(group, name, node)`` call of ``ftlab_register_configs``."""

    group: str
    name: str
    node: Any
    plugin: str
    """Plugin name that stored it."""

    @property
    def schema(self) -> type:
        """The node's dataclass (``node`` may be the class or an instance)."""
        return self.node if isinstance(self.node, type) else type(self.node)


def did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class Plugins:
    """Typed facade over the pluggy manager."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager("ftlab")
        self.pm.add_hookspecs(hookspecs)
        self._dists: dict[str, tuple[str, str]] = {}
        self._backends: Optional[dict[str, BackendInfo]] = None
        self._options: Optional[list[ConfigOption]] = None
        self._named: dict[str, dict[str, Any]] = {}
        self._undo_trace = None
        for env in (os.environ.get("FTLAB_DISABLE_PLUGINS") or "").split(","):
            if env.strip():
                self.pm.set_blocked(env.strip())
        for modname in DEFAULT_PLUGINS:
            self.register(importlib.import_module(modname), name=modname)
            self._dists[modname] = ("ftlab", _version("ftlab"))
        if load_entry_points:
            self._load_entry_points()
        self.pm.check_pending()
        if os.environ.get("FTLAB_TRACE_PLUGINS"):
            self._undo_trace = self.pm.trace.root.setwriter(sys.stderr.write) or None
            self.pm.enable_tracing()

    def _load_entry_points(self) -> None:
        only = {s.strip() for s in (os.environ.get("FTLAB_LOAD_PLUGINS") or "").split(",") if s.strip()}
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if (only and ep.name not in only) or self.pm.is_blocked(ep.name):
                continue
            if self.pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must say who it is
                raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
            self.pm.register(plugin, name=ep.name)
            dist = ep.dist
            self._dists[ep.name] = (dist.name if dist else "?", dist.version if dist else "?")

    # -- registration (tests use these to add and remove plugins) --------------------------------
    def register(self, plugin: object, name: Optional[str] = None) -> str:
        name = self.pm.register(plugin, name=name)
        self._dists.setdefault(name, (getattr(plugin, "__name__", name), "local"))
        self._backends = self._options = None
        self._named = {}
        return name

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._dists.pop(name, None)
        self._backends = self._options = None
        self._named = {}

    # -- typed hook calls -------------------------------------------------------------------------
    def backends(self) -> dict[str, BackendInfo]:
        """All registered backends by name (cached until a plugin is added or removed)."""
        if self._backends is not None:
            return self._backends
        found: dict[str, BackendInfo] = {}
        for impl in self.pm.hook.ftlab_register_backends.get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or "?"

            def register(name: str, factory, schema, capabilities: Optional[Capabilities] = None,
                         distributions: Sequence[str] = (), _plugin=plugin_name) -> None:
                if not _NAME.match(name):
                    raise PluginError(f"plugin {_plugin!r} registers invalid backend name {name!r}")
                if name in found:
                    raise PluginError(f"backend {name!r} registered twice: by {found[name].plugin!r} "
                                      f"and {_plugin!r}")
                if capabilities is not None and not isinstance(capabilities, Capabilities):
                    raise PluginError(f"plugin {_plugin!r} registers backend {name!r} with capabilities of "
                                      f"type {type(capabilities).__name__}; pass ftlab.contract.Capabilities")
                dist, version = self._dists.get(_plugin, ("?", "?"))
                found[name] = BackendInfo(name, factory, schema, _plugin, dist, version, capabilities,
                                          tuple(distributions))

            impl.function(register=register)
        self._backends = found
        return found

    def backend(self, name: str) -> BackendInfo:
        """The backend called ``name``; unknown names fail with the list and a suggestion."""
        known = self.backends()
        if name not in known:
            raise PluginError(f"unknown backend {name!r}{did_you_mean(name, known)} "
                              f"(registered: {', '.join(sorted(known)) or 'none'}; see `ftlab plugins`)")
        return known[name]

    def config_options(self) -> list[ConfigOption]:
        """Every option stored through ``ftlab_register_configs`` (cached like :meth:`backends`)."""
        if self._options is not None:
            return self._options
        found: list[ConfigOption] = []
        for impl in self.pm.hook.ftlab_register_configs.get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or "?"

            def store(group: str, name: str, node: Any, _plugin=plugin_name) -> None:
                found.append(ConfigOption(group, name, node, _plugin))

            impl.function(store=store)
        self._options = found
        return found

    def register_configs(self, store: Callable[..., None]) -> None:
        """Hand every stored option to ``store(group, name, node)`` (Hydra's ConfigStore)."""
        for opt in self.config_options():
            store(opt.group, opt.name, opt.node)

    def model_sources(self) -> dict[str, ConfigOption]:
        """Registered model sources by name: options of group ``model_source`` (ftlab.config.model)."""
        from ftlab.config.model import MODEL_SOURCE_GROUP

        found: dict[str, ConfigOption] = {}
        for opt in self.config_options():
            if opt.group != MODEL_SOURCE_GROUP:
                continue
            if opt.name in found:
                raise PluginError(f"model source {opt.name!r} registered twice: by "
                                  f"{found[opt.name].plugin!r} and {opt.plugin!r}")
            found[opt.name] = opt
        return found

    def model_schema(self, source: str) -> type:
        """The model schema registered for ``source``; unknown sources fail with the list."""
        known = self.model_sources()
        if source not in known:
            raise PluginError(f"unknown model source {source!r}{did_you_mean(source, known)} "
                              f"(registered: {', '.join(sorted(known)) or 'none'}; see `ftlab plugins`)")
        return known[source].schema

    def _registry(self, hook: str, what: str) -> dict[str, Any]:
        """Objects with a ``name`` offered through ``register`` of ``hook`` (cached like :meth:`backends`)."""
        if hook in self._named:
            return self._named[hook]
        found: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or "?"

            def register(obj: Any, _plugin=plugin_name) -> None:
                name = getattr(obj, "name", None)
                if not isinstance(name, str) or not _NAME.match(name):
                    raise PluginError(f"plugin {_plugin!r} registers a {what} with invalid name {name!r}")
                if name in found:
                    raise PluginError(f"{what} {name!r} registered twice: by {owner[name]!r} and {_plugin!r}")
                found[name], owner[name] = obj, _plugin

            impl.function(register=register)
        self._named[hook] = found
        return found

    def tasks(self) -> dict[str, Any]:
        """Registered task types (:class:`ftlab.tasks.TaskType`) by ``eval.task`` name."""
        return self._registry("ftlab_register_tasks", "task")

    def task(self, name: str):
        known = self.tasks()
        if name not in known:
            raise PluginError(f"unknown eval.task {name!r}{did_you_mean(name, known)} "
                              f"(registered: {', '.join(sorted(known))})")
        return known[name]

    def metrics(self) -> dict[str, Any]:
        """Registered text metrics (:class:`ftlab.metrics.text.TextMetric`) by name."""
        return self._registry("ftlab_register_metrics", "metric")

    def metric(self, name: str):
        known = self.metrics()
        if name not in known:
            raise PluginError(f"unknown metric {name!r} in eval.metrics{did_you_mean(name, known)} "
                              f"(registered: {', '.join(sorted(known))})")
        problem = getattr(known[name], "missing", lambda: "")()
        if problem:
            raise PluginError(f"metric {name!r} in eval.metrics needs {problem}")
        return known[name]

    def run_started(self, cfg, run_dir) -> None:
        self.pm.hook.ftlab_run_started(cfg=cfg, run_dir=run_dir)

    def run_finished(self, cfg, run_dir, summary: dict) -> None:
        self.pm.hook.ftlab_run_finished(cfg=cfg, run_dir=run_dir, summary=summary)

    def plugin_table(self) -> list[tuple[str, str, str, str]]:
        """Rows ``(backend, plugin, distribution, version)`` for ``ftlab plugins``."""
        return [(b.name, b.plugin, b.distribution, b.version) for b in
                sorted(self.backends().values(), key=lambda b: b.name)]


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "?"


_PLUGINS: Optional[Plugins] = None


def get_plugins() -> Plugins:
    """The process-wide manager, built on first use."""
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = Plugins(load_entry_points=os.environ.get("FTLAB_NO_ENTRY_POINTS") != "1")
    return _PLUGINS


def set_plugins(plugins: Optional[Plugins]) -> None:
    """Replace the process-wide manager (tests)."""
    global _PLUGINS
    _PLUGINS = plugins
