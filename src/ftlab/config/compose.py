"""Compose and validate configs: Hydra's ConfigStore holds the schemas, errors get a did-you-mean."""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

from ftlab.config import bounds
from ftlab.config.run import RunConfig
from ftlab.contract import CHECKED_KEYS, Decoding, Fallback, refused_decoding_option
from ftlab.plugins import did_you_mean

SCHEMA_NAME = "ftlab_schema"


class ConfigError(ValueError):
    """A config that does not fit the schemas (unknown key, wrong type, bad value); ``keys``: the keys
    to fix, so the CLI can say where each was set (:mod:`ftlab.config.origin`)."""

    def __init__(self, message: str, keys: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.keys = tuple(keys)


def register_schemas(plugins) -> None:
    """Store the run schema, every backend schema and plugin configs in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name=SCHEMA_NAME, node=RunConfig)
    for info in plugins.backends().values():
        cs.store(group="backend", name=info.name, node=info.schema)

    def store(group: str, name: str, node: Any) -> None:
        cs.store(group=group, name=name, node=node)

    plugins.register_configs(store)


def _schema_keys(path: str, plugins, backend_schema: str = "") -> list[str]:
    """Valid sibling keys at a dotted ``path`` (``train.lora``), from the dataclass schemas.

    Under ``backend`` (``model``): the schema named ``backend_schema`` (from the error), else every
    backend's (every registered model source's).
    """
    parts = [p for p in path.split(".") if p]
    roots: list[Any] = [RunConfig]
    if parts[:1] in (["backend"], ["model"]):
        schemas = ([info.schema for info in plugins.backends().values()] if parts[0] == "backend"
                   else list({o.schema for o in plugins.model_sources().values()}))
        roots = [c for c in schemas if c.__name__ == backend_schema] or schemas
        parts = parts[1:]
    keys: set[str] = set()
    for node in roots:
        for part in parts:
            node = _dataclass_of(node, part) if node is not None else None
        if node is not None:
            keys |= {f.name for f in dataclasses.fields(node)}
    return sorted(keys)


def _dataclass_of(cls: type, field_name: str) -> Optional[type]:
    import typing

    hint = typing.get_type_hints(cls).get(field_name)
    return hint if dataclasses.is_dataclass(hint) else None


def unknown_key_message(full: str, plugins=None, owner: str = "") -> str:
    """``unknown config key 'train.learnig_rate'; did you mean 'train.learning_rate'?``"""
    parent, _, leaf = full.rpartition(".")
    hint = ""
    if plugins is not None:
        close = difflib.get_close_matches(leaf, _schema_keys(parent, plugins, owner), n=1, cutoff=0.6)
        hint = f"; did you mean '{f'{parent}.' if parent else ''}{close[0]}'?" if close else ""
    return f"unknown config key '{full}'{hint}"


def _unknown_key(node: Any, path: str = "") -> Optional[tuple[str, str]]:
    """The first key of ``node`` that its dataclass schema lacks: (dotted key, schema name).

    Hydra's ``+group.key=value`` adds keys even to structured nodes (and ``OmegaConf.to_object``
    then passes them through silently), so every typed node is checked against its fields.
    """
    if not isinstance(node, DictConfig):
        return None
    cls = OmegaConf.get_type(node)
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else None
    for key in node.keys():
        full = f"{path}{key}"
        if fields is not None and key not in fields:
            return full, cls.__name__
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            found = _unknown_key(child, f"{full}.")
            if found:
                return found
    return None


def explain(exc: BaseException, plugins=None) -> str:
    """One paragraph for a composition/validation error, with the dotted key and a suggestion."""
    chain, e = [], exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = "\n".join(str(x) for x in chain)
    key_m = re.search(r"full_key:\s*(\S+)", text)
    miss = re.search(r"Key '([^']+)' not in '(\w+)'", text) or re.search(
        r"Key '([^']+)' is not in struct", text)
    if key_m and miss:
        where = re.search(r"^In '([^']+)'", text, re.M)
        src = f" (set in config file '{where.group(1)}')" if where and where.group(1) != "config" else ""
        owner = miss.group(2) if miss.re.groups > 1 else ""
        return unknown_key_message(key_m.group(1), plugins, owner) + src
    if key_m and "missing mandatory value" in text:
        return (f"config key '{key_m.group(1)}' must be set "
                f"(add {key_m.group(1)}=VALUE to the command line or the experiment file)")
    if key_m:
        why = re.search(r"^((?:Value|Invalid value) '(?!\$VALUE).*)$", text, re.M)
        detail = why.group(1).strip() if why else text.splitlines()[0].strip()
        return f"invalid value for config key '{key_m.group(1)}': {detail}"
    group = re.search(r"Could not find '([^']+)'", text)
    if group:
        grp, _, name = group.group(1).rpartition("/")
        opts_m = re.search(r"Available options in '[^']*':\n((?:\t.*\n?)*)", text)
        opts = opts_m.group(1).split() if opts_m else []
        hint = did_you_mean(name, opts) if opts else ""
        return (f"unknown option {name!r} for config group '{grp or name}'{hint}"
                + (f" (available: {', '.join(opts)})" if opts else ""))
    return str(chain[-1] if len(chain) > 1 and isinstance(chain[0], ConfigError) else exc).strip()


def plain_config(cfg: DictConfig | dict | str, resolve: bool = True) -> dict:
    """The run config as plain data (from a DictConfig, a dict or YAML text), without Hydra's own
    ``hydra`` node: what ``config.yaml`` records, replay and predict read back. The one place that strips it."""
    node = OmegaConf.create(cfg) if isinstance(cfg, (str, dict)) else cfg
    plain = OmegaConf.to_container(node, resolve=resolve)
    plain.pop("hydra", None)
    return plain


def validate(cfg: DictConfig | dict, plugins=None) -> RunConfig:
    """Build the typed :class:`RunConfig` (running every ``__post_init__`` check).

    An untyped config (a dict, or YAML read back from a run) is first merged over the run schema
    and the schema of the backend it names, so its backend keys are checked too.
    """
    node = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg.copy()
    if "hydra" in node:  # Hydra's own node is not part of the run config
        node = OmegaConf.create(plain_config(node, resolve=False))
    if OmegaConf.get_type(node) is not RunConfig:
        schemas: list[Any] = [OmegaConf.structured(RunConfig)]
        name = OmegaConf.select(node, "backend.name", default=None)
        if name:
            from ftlab.plugins import get_plugins

            plugins = plugins or get_plugins()
            schemas.append({"backend": OmegaConf.structured(plugins.backend(name).schema)})
        try:
            node = OmegaConf.merge(*schemas, node)
        except Exception as exc:
            raise ConfigError(explain(exc, plugins)) from exc
    plugins = _type_model(node, plugins)
    unknown = _unknown_key(node)
    if unknown:
        raise ConfigError(unknown_key_message(unknown[0], plugins or _maybe_plugins(), unknown[1]))
    try:
        typed = OmegaConf.to_object(node)
    except Exception as exc:
        raise ConfigError(explain(exc)) from exc
    try:
        bounds.check(typed)
    except bounds.BoundsError as exc:
        raise ConfigError(str(exc)) from None
    check_capabilities(typed, plugins or _maybe_plugins())
    check_task(typed, plugins or _maybe_plugins())
    return typed


def check_task(cfg: RunConfig, plugins=None):
    """``eval.task`` against the registry, the config and the backend; returns the :class:`TaskType`.

    A generation task has no closed label set: label-only keys (``data.labels``, lenient
    ``data.acceptable``, ``train.class_weighting``, ``eval.decoding.mode=score_labels``) are refused, as
    are unknown metrics, and a backend that does not declare the task (or the training method for it).
    """
    if plugins is None:
        return None
    from ftlab.plugins import PluginError

    try:
        task = plugins.task(cfg.eval.task)
        plugins.metrics()  # every registered metric is checked at start-up, used or not
        for name in cfg.eval.metrics:
            plugins.metric(name)
    except PluginError as exc:
        raise ConfigError(str(exc), keys=("eval.task" if "eval.task" in str(exc) else "eval.metrics",)) from None
    if cfg.eval.metrics and not task.generative:
        raise ConfigError(f"eval.metrics lists text metrics, but eval.task={task.name} is scored by its "
                          f"classification report: leave eval.metrics empty")
    info = plugins.backends().get(cfg.backend.name)
    caps = info.capabilities if info is not None else None
    declared = caps.tasks if caps is not None else None
    if (task.generative and (declared is None or task.name not in declared)) or \
            (declared is not None and task.name not in declared):
        raise ConfigError(f"eval.task={task.name} is not supported by backend {cfg.backend.name!r}; it "
                          f"supports eval.task: {', '.join(declared or ('classification',))}",
                          keys=("eval.task", "backend"))
    if not task.generative:
        if "{labels}" not in cfg.prompt.template:
            raise ConfigError("prompt.template must contain {labels} for eval.task=classification "
                              "(the label list the model chooses from)")
        return task
    label_only = []
    if "{labels}" in cfg.prompt.template:
        label_only.append("prompt.template with {labels} (use a generation prompt, e.g. prompt=summarize)")
    if cfg.data.labels:
        label_only.append("data.labels (a generation task has no closed label set; use a data config "
                          "with data.target_column, e.g. data=mtsamples_summarize)")
    if _choice(cfg, "data.acceptable.source") != "none":
        label_only.append("data.acceptable.source (acceptable labels; acceptable answers of question "
                          "answering are a list in data.target_column)")
    if _choice(cfg, "train.class_weighting") != "none":
        label_only.append("train.class_weighting (per-class loss weights)")
    if _choice(cfg, "eval.decoding.mode") != "generate":
        label_only.append("eval.decoding.mode=score_labels (ranks labels; set eval.decoding.mode=generate)")
    if label_only:
        raise ConfigError(f"eval.task={task.name} cannot use label-only keys: " + "; ".join(label_only))
    methods = caps.generation_methods if caps is not None else None
    if methods is not None and _choice(cfg, "train.method") not in methods:
        raise ConfigError(f"train.method={_choice(cfg, 'train.method')} does not train backend "
                          f"{cfg.backend.name!r} for eval.task={task.name}; use train.method: {', '.join(methods)}")
    return task


def _type_model(node: DictConfig, plugins=None):
    """Give an untyped ``model`` node the schema its ``source`` registered (in place); returns plugins.

    ``conf/model/*.yaml`` extend their source's schema, so a composed node is typed already; a saved
    config or a file without the defaults entry is typed here. A typed node must be its source's schema.
    """
    from ftlab.plugins import PluginError, get_plugins

    model = node._get_node("model") if "model" in node else None
    if not isinstance(model, DictConfig) or model._is_missing() or model._is_none():
        return plugins
    source = model.get("source")
    if not isinstance(source, str) or source in ("", "???"):
        raise ConfigError("config key 'model.source' must be set (a source registered by a backend "
                          "plugin; `ftlab plugins` lists them)")
    plugins = plugins or get_plugins()
    try:
        schema = plugins.model_schema(source)
    except PluginError as exc:
        raise ConfigError(f"model.source: {exc}") from exc
    have = OmegaConf.get_type(model)
    if dataclasses.is_dataclass(have):
        if not issubclass(have, schema):
            raise ConfigError(f"model.source={source!r} is registered with schema {schema.__name__}, but "
                              f"this model config extends {have.__name__} (choose another model=...)")
        return plugins
    try:
        typed = OmegaConf.merge({"model": OmegaConf.structured(schema)}, {"model": model}).model
    except Exception as exc:
        raise ConfigError(explain(exc, plugins)) from exc
    with open_dict(node):
        node.model = typed
    return plugins


def _choice(cfg: RunConfig, key: str) -> str:
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return str(getattr(value, "value", value))


def check_capabilities(cfg: RunConfig, plugins=None) -> tuple[Fallback, ...]:
    """The documented fallbacks ``cfg`` needs on its backend (empty: it honours every choice).

    A choice the backend declares no support and no fallback for is a :class:`ConfigError` naming
    the key, the value, the backend and what it supports. A backend that declared no capabilities
    (or a key it left undeclared) is not checked, except for :data:`~ftlab.contract.DECODING_OPTIONS`.
    """
    if plugins is None:
        return ()
    info = plugins.backends().get(cfg.backend.name)
    caps = info.capabilities if info is not None else None
    refused = refused_decoding_option(cfg.eval.decoding, cfg.backend.name, caps)
    if refused:
        raise ConfigError(refused[1], keys=(refused[0],))
    if caps is None:
        return ()
    used = []
    for key in CHECKED_KEYS:
        supported, value = caps.supported(key), _choice(cfg, key)
        if supported is None or value in supported:
            continue
        fallback = caps.fallback(key, value)
        if fallback is None:
            raise ConfigError(
                f"{key}={value} is not supported by backend {cfg.backend.name!r}; it supports {key}: "
                f"{', '.join(supported) or 'no value'} (choose one of those, or another backend)")
        used.append(fallback)
    return tuple(used)


def unused_train_keys(cfg: RunConfig, plugins=None) -> list[str]:
    """``train.<key>=<value>`` for each key set away from its schema default that the backend's
    :class:`~ftlab.contract.Capabilities` does not list in ``train_keys`` (it has no effect there)."""
    from ftlab.config.train import TrainConfig
    from ftlab.tracking.mlflow_tracker import flatten

    info = plugins.backends().get(cfg.backend.name) if plugins is not None else None
    caps = info.capabilities if info is not None else None
    if caps is None or caps.train_keys is None:
        return []
    have = flatten(OmegaConf.to_container(OmegaConf.structured(cfg.train), enum_to_str=True))
    default = flatten(OmegaConf.to_container(OmegaConf.structured(TrainConfig()), enum_to_str=True))
    return [f"train.{k}={v}" for k, v in sorted(have.items())
            if v != default.get(k) and not caps.honours_train_key(k)]


def decoding_for(cfg: RunConfig, fallbacks: Sequence[Fallback] = ()) -> Decoding:
    """``cfg.eval.decoding`` as handed to the backend, with a decoding-mode fallback applied."""
    d = Decoding.from_config(cfg.eval.decoding, seed=cfg.seed)
    for f in fallbacks:
        if f.key == "eval.decoding.mode":
            d = dataclasses.replace(d, mode=f.used)
    return d


def _maybe_plugins():
    from ftlab.plugins import get_plugins

    try:
        return get_plugins()
    except Exception:  # the message loses its suggestion, not its key
        return None


def compose(overrides: Sequence[str] = (), plugins=None, return_hydra_config: bool = False,
            config_dir: Optional[str] = None) -> DictConfig:
    """Compose ``conf/config.yaml`` + overrides, as ``ftlab`` does (outside a Hydra app).

    ``config_dir``: a user's config folder (``ftlab --config-dir DIR``), searched before ``conf/``
    exactly as Hydra's ``--config-dir`` does, so ``+experiment=mine`` finds ``DIR/experiment/mine.yaml``.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ftlab.paths import project_root
    from ftlab.plugins import get_plugins

    plugins = plugins or get_plugins()
    register_schemas(plugins)
    install_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(project_root() / "conf"), version_base="1.3"):
            if config_dir is not None:
                _prepend_config_dir(config_dir)
            return hydra_compose("config", overrides=list(overrides),
                                 return_hydra_config=return_hydra_config)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(explain(exc, plugins)) from exc


def _prepend_config_dir(config_dir: str) -> None:
    """Put ``config_dir`` first on the search path of the initialised Hydra, as ``--config-dir``
    does in a Hydra app (``hydra/_internal/utils.py``: ``search_path.prepend("command-line", ...)``).
    The public compose API has no such argument, so the loader is rebuilt over the new search path."""
    import os

    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.global_hydra import GlobalHydra

    path = os.path.abspath(os.path.expanduser(config_dir))
    if not os.path.isdir(path):
        raise ConfigError(f"--config-dir {config_dir}: no such folder ({path})")
    hydra = GlobalHydra.instance().hydra
    search_path = hydra.config_loader.config_search_path
    search_path.prepend(provider="command-line", path=f"file://{path}")
    hydra.config_loader = ConfigLoaderImpl(config_search_path=search_path)


def install_resolvers() -> None:
    from ftlab.paths import project_root

    if not OmegaConf.has_resolver("ftlab_root"):
        OmegaConf.register_new_resolver("ftlab_root", lambda: str(project_root()))
