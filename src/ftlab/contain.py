"""Paths and stores read from a run folder or a run's tags stay inside what they belong to.

A run folder (``state.json``, ``mlflow_run.json``, ``tracking_journal.jsonl``, ``config.yaml``) and an
MLflow run's tags are input like any other: a planted or edited file must not make ``ftlab sync``
upload an arbitrary local file, ``ftlab predict`` or a resume load weights from elsewhere, ``ftlab
replay`` write outside ``outputs/`` or a lookup open an arbitrary sqlite file. Every such path is
resolved (symlinks and ``..`` included) and refused unless it lies inside its folder; a local
MLflow store named by a run folder is used only when it is the configured one.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Optional

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,199}$")
"""One path component: an experiment name becomes ``outputs/<experiment>/`` and ``multirun/<experiment>/``."""


class OutsideFolder(ValueError):
    """A path read from a run folder or a run's tags points outside where it must stay."""


def inside(root: Path, path: str | Path, what: str) -> Path:
    """``path`` (absolute, or relative to ``root``) resolved; refused unless it is ``root`` or below it."""
    root = Path(root).resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise OutsideFolder(f"{what} names {path}, which is outside {root}; refusing it (a run folder's "
                            f"files and tags may only point inside that folder)")
    return target


def relative_key(path: Optional[str], what: str) -> Optional[str]:
    """An artifact path (``eval/base/eval``): relative, no ``..``, or refused."""
    if path is None:
        return None
    p = PurePosixPath(str(path).replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", str(path)):
        raise OutsideFolder(f"{what} names the artifact path {path!r}: it must be relative and stay "
                            f"inside the run's artifacts")
    return str(path)


def is_local_path(uri: str) -> bool:
    """A model reference that names a local file or folder (a BigQuery model id has no separator)."""
    return "/" in uri or "\\" in uri or uri.startswith((".", "~"))


def safe_name(name: str, what: str) -> str:
    if not SAFE_NAME.match(name) or name in (".", ".."):
        raise OutsideFolder(f"{what} {name!r} is not a plain name (letters, digits, _ . = + -; no path "
                            f"separators): it becomes a folder name under outputs/ and multirun/")
    return name


def local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def trusted_store(recorded: str, configured: str, where: Path) -> str:
    """The store a run folder's ``mlflow_run.json`` names, if it may be opened: a server (its URL is
    all the folder can say) or the configured local store; another local store is refused."""
    if not recorded or recorded == configured or not local_store(recorded):
        return recorded or configured
    raise OutsideFolder(f"{where / 'mlflow_run.json'} names the local MLflow store {recorded}, not the "
                        f"configured one ({configured}); refusing to open a store a run folder names. "
                        f"If it is yours, pass --tracking-uri {recorded}")
