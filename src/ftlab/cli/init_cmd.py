"""``ftlab init DIR --data FILE``: a config folder for your own data, ready for ``ftlab --config-dir DIR``.

Writes ``DIR/experiment/NAME.yaml``, ``DIR/data/NAME.yaml`` and ``DIR/prompt/NAME.yaml`` (a copy of
``prompt=classify_generic`` to reword), with ``data.labels: auto`` and, without ``--eval``, a stratified
``data.eval_fraction`` hold-out. Before writing, the file is read through the same loader a run uses:
the text and label columns are checked (guessed from common names when not given), the labels are
printed with their counts, and bad rows are counted (then the data config says ``on_error: skip`` and
why). The written experiment is composed and validated before the command ends. See docs/own_data.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

TEXT_NAMES = ("text", "input_text", "input", "sentence", "content", "document", "body", "review", "prompt")
LABEL_NAMES = ("label", "output_text", "labels", "category", "class", "target", "output", "y")
PROMPT = """# Run: ftlab --config-dir {dir} prompt={name}   (written by ftlab init; reword it for your task)
defaults:
  - classify_generic
  - _self_
name: {name}
template: |-
  Classify the text into one of these categories:
  {{labels}}

  Text: {{text}}

  Answer with the name of one category from the list, exactly as written.
"""


def _q(value) -> str:
    """A YAML scalar (JSON's quoting is valid YAML)."""
    return json.dumps(str(value), ensure_ascii=False)


def _pick(given: Optional[str], names: Sequence[str], have: list[str], what: str) -> str:
    if given:
        if given not in have:
            raise SystemExit(f"ftlab init: --{what}-column {given!r} is not a column of the file; "
                             f"its columns are {have}")
        return given
    lower = {c.lower(): c for c in have}
    for n in names:
        if n in lower:
            return lower[n]
    raise SystemExit(f"ftlab init: no obvious {what} column among {have}; pass --{what}-column NAME")


def _parser() -> argparse.ArgumentParser:
    from ftlab.config.data import DataFormat

    p = argparse.ArgumentParser(prog="ftlab init", description=(
        "Write a starting experiment, data and prompt config for a data file into DIR, to run with "
        "ftlab --config-dir DIR +experiment=NAME (docs/own_data.md)."))
    p.add_argument("dir", type=Path, help="the config folder to write (created if missing)")
    p.add_argument("--data", required=True, type=Path, help="the data file: JSONL, CSV, TSV or Parquet")
    p.add_argument("--eval", type=Path, default=None,
                   help="a separate evaluation file (default: hold out --eval-fraction of --data)")
    p.add_argument("--eval-fraction", type=float, default=0.2, help="held-out share without --eval (0.2)")
    p.add_argument("--text-column", help=f"the input column (default: the first of {', '.join(TEXT_NAMES)})")
    p.add_argument("--label-column", help=f"the label column (default: the first of {', '.join(LABEL_NAMES)})")
    p.add_argument("--id-column", help="a column of unique row ids (default: row numbers)")
    p.add_argument("--name", help="name of the experiment, data and prompt files (default: the file's stem)")
    p.add_argument("--backend", help="backend to run on (`ftlab plugins`; default: the project's default)")
    p.add_argument("--format", default="auto", choices=[f.value for f in DataFormat],
                   help="file format (default: from the extension)")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")
    return p


def main(args: Sequence[str]) -> int:
    ns = _parser().parse_args(list(args))
    logging.basicConfig(level=logging.INFO, format="[ftlab] %(message)s")
    from ftlab.config.data import DataConfig, DataFormat, OnError
    from ftlab.data import DataError, load_data
    from ftlab.data.formats import column_names, file_format

    data = ns.data.expanduser().resolve()
    evl = ns.eval.expanduser().resolve() if ns.eval else None
    folder = ns.dir.expanduser().resolve()
    name = ns.name or re.sub(r"[^a-z0-9_]+", "_", data.stem.lower()).strip("_") or "mydata"
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise SystemExit(f"ftlab init: --name {name!r}: use letters, digits, '_', '-' or '.'")
    try:
        for f in (data, evl):
            if f is not None and not f.is_file():
                raise DataError(f"{f}: file not found")
        fmt = file_format(data, DataFormat(ns.format), "--data")
        have = column_names(data, fmt)
        text = _pick(ns.text_column, TEXT_NAMES, have, "text")
        label = _pick(ns.label_column, LABEL_NAMES, have, "label")
        cfg = DataConfig(name=name, format=DataFormat(ns.format), train_path=str(data),
                         eval_path=str(evl) if evl else None, text_column=text, label_column=label,
                         id_column=ns.id_column, labels="auto", on_error=OnError.skip,
                         eval_fraction=None if evl else ns.eval_fraction)
        loaded = load_data(cfg, ["eval"], need_train=True)
    except (DataError, ValueError) as exc:
        print(f"ftlab init: {exc}", file=sys.stderr)
        return 2
    bad = {k: v for s in loaded.splits.values() for k, v in s.skipped_counts().items()}
    files = _write(folder, name, cfg, loaded, bad, ns.backend, ns.force)
    if files is None:
        return 2
    from ftlab.config.compose import ConfigError, compose, validate

    try:
        validate(compose([f"+experiment={name}"], config_dir=str(folder)))
    except ConfigError as exc:  # a bug here, or a broken file the user already had under DIR
        print(f"ftlab init: the written experiment does not validate: {exc}", file=sys.stderr)
        return 2
    rows = {k: len(s.examples) for k, s in loaded.splits.items()}
    print(f"wrote {', '.join(str(f) for f in files)}")
    print(f"{rows['train']} train / {rows['eval']} eval rows, {len(loaded.labels)} labels"
          + (f"; {sum(bad.values())} bad rows skipped ({', '.join(f'{k}={v}' for k, v in bad.items())})"
             if bad else ""))
    print(f"next:  ftlab --config-dir {folder} +experiment={name}\n       ftlab report {name}")
    return 0


def _write(folder: Path, name: str, cfg, loaded, bad: dict, backend: Optional[str],
           force: bool) -> Optional[list[Path]]:
    paths = [folder / "experiment" / f"{name}.yaml", folder / "data" / f"{name}.yaml",
             folder / "prompt" / f"{name}.yaml"]
    exist = [p for p in paths if p.exists()]
    if exist and not force:
        print(f"ftlab init: {', '.join(map(str, exist))} exist(s); pass --force to overwrite",
              file=sys.stderr)
        return None
    labels = ", ".join(loaded.labels)
    data = [f"# Run: ftlab --config-dir {folder} data={name}   (written by ftlab init; keys: docs/config.md)",
            f"name: {name}", f"format: {cfg.format.value}", f"train_path: {_q(cfg.train_path)}"]
    data += ([f"eval_path: {_q(cfg.eval_path)}"] if cfg.eval_path else
             [f"eval_fraction: {cfg.eval_fraction}   # stratified hold-out; row ids in <run>/data/split.json",
              "split_seed: 0"])
    data += [f"text_column: {_q(cfg.text_column)}", f"label_column: {_q(cfg.label_column)}"]
    if cfg.id_column:
        data.append(f"id_column: {_q(cfg.id_column)}")
    data += [f"# auto = the training file's sorted distinct labels, now {len(loaded.labels)}: {labels[:300]}",
             "# (list them instead to fix the set and its order)", "labels: auto"]
    if bad:
        data += [f"# ftlab init found {sum(bad.values())} bad rows ({', '.join(f'{k}={v}' for k, v in bad.items())}):",
                 "# they are left out and logged with each run; fix the file and set on_error: fail",
                 "on_error: skip"]
    else:
        data.append("on_error: fail")
    exp = ["# @package _global_",
           f"# Run: ftlab --config-dir {folder} +experiment={name}",
           f"# Why: your data ({Path(cfg.train_path).name}), written by ftlab init. Override any key on the command",
           "#      line or here; the recipes in the ftlab checkout's experiments/ show what to tune.",
           "defaults:", f"  - override /data: {name}", f"  - override /prompt: {name}"]
    if backend:
        exp.append(f"  - override /backend: {backend}")
    exp.append(f"experiment: {name}")
    texts = ["\n".join(exp) + "\n", "\n".join(data) + "\n", PROMPT.format(dir=folder, name=name)]
    from ftlab.paths import atomic_write_text

    for path, text in zip(paths, texts):
        atomic_write_text(path, text)
    return paths
