"""Generate the config reference (docs/config.md) from the schemas' attribute docstrings.

    python -m ftlab.config.reference > docs/config.md
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import textwrap
import typing


def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` from the string literal under each annotated attribute."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, nxt in zip(body, body[1:] + [None]):
            if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) \
                    and isinstance(nxt.value, ast.Constant):
                out[node.target.id] = " ".join(str(nxt.value.value).split())
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        v = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        v = f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(v):
            return "(group)"
    else:
        return "required"
    if isinstance(v, enum.Enum):
        v = v.value
    if isinstance(v, list):
        v = [x.value if isinstance(x, enum.Enum) else x for x in v]
    return "required" if v == "???" else f"`{v!r}`" if isinstance(v, str) else f"`{v}`"



def _type(t) -> str:
    if typing.get_origin(t) is list:
        return "list of " + _type(typing.get_args(t)[0])
    if typing.get_origin(t) is typing.Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        return (_type(args[0]) + " or null") if len(args) == 1 else str(t)
    if isinstance(t, type) and issubclass(t, enum.Enum):
        return " \\| ".join(m.value for m in t)
    return str(t).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _range(f: dataclasses.Field) -> str:
    from ftlab.config.bounds import range_of

    rng = range_of(f)
    return f", {rng.text().replace('>=', '≥').replace('<=', '≤')}" if rng is not None else ""


def rows(cls: type, prefix: str) -> list[str]:
    docs, hints, out = field_docs(cls), typing.get_type_hints(cls), []
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            out += rows(t, f"{prefix}{f.name}.")
            continue
        out.append(f"| `{prefix}{f.name}` | {_type(t)}{_range(f)} | {_default(f)} | {docs.get(f.name, '')} |")
    return out


def render(plugins=None) -> str:
    from ftlab.config import RunConfig

    head = "| key | type | default | meaning |\n|---|---|---|---|"
    parts = ["# Config reference", "",
             "Generated from the schemas' docstrings by `python -m ftlab.config.reference`; "
             "do not edit by hand. Values shown are the schema defaults; `conf/` files and "
             "experiments override them.", ""]
    hints = typing.get_type_hints(RunConfig)
    docs = field_docs(RunConfig)
    top = [f"| `{f.name}` | {_type(hints[f.name])} | {_default(f)} | {docs.get(f.name, '')} |"
           for f in dataclasses.fields(RunConfig) if not dataclasses.is_dataclass(hints[f.name])
           and f.name not in ("backend", "model")]
    parts += ["## Run", "", head, *top, ""]
    for f in dataclasses.fields(RunConfig):
        if dataclasses.is_dataclass(hints[f.name]):
            parts += [f"## `{f.name}`", "", docs.get(f.name, ""), "", head,
                      *rows(hints[f.name], f"{f.name}."), ""]
    from ftlab.config.model import ModelConfig

    parts += ["## `model`", "", docs.get("model", "") + " Every model schema has these keys; the sections "
              "below add each registered source's.", "", head, *rows(ModelConfig, "model."), ""]
    if plugins is not None:
        by_schema: dict[type, list] = {}
        for opt in plugins.model_sources().values():
            by_schema.setdefault(opt.schema, []).append(opt)
        for schema, opts in sorted(by_schema.items(), key=lambda kv: kv[1][0].name):
            names = ", ".join(f"`{o.name}`" for o in sorted(opts, key=lambda o: o.name))
            parts += [f"## `model` with `source` = {names} (plugin `{opts[0].plugin}`)", "",
                      " ".join((schema.__doc__ or "").split()), "", head, *rows(schema, "model."), ""]
        for info in sorted(plugins.backends().values(), key=lambda b: b.name):
            parts += [f"## `backend` = `{info.name}` ({info.distribution})", "", head,
                      *rows(info.schema, "backend."), ""]
    return "\n".join(parts)


def main(args=()) -> int:
    """``ftlab config-schema``: print the reference (Markdown)."""
    from ftlab.plugins import get_plugins

    print(render(get_plugins()))
    return 0


if __name__ == "__main__":
    main()
