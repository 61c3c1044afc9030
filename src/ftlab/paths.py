"""Where the project lives: the folder holding ``conf/config.yaml``.

Order: ``$FTLAB_HOME``; the current folder or a parent of it that has ``conf/config.yaml``; the
source checkout this package was installed from (editable installs). Relative paths in configs
(data files, local model folders) are resolved against this root, never against the cwd.

Files that a later command relies on (``state.json``, ``mlflow_run.json``, predictions, reports)
are written with :func:`atomic_write_text` / :func:`atomic_write_bytes` / :func:`atomic_open`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Optional


class ProjectNotFound(RuntimeError):
    pass


def project_root() -> Path:
    env = os.environ.get("FTLAB_HOME")
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / "conf" / "config.yaml").is_file():
            raise ProjectNotFound(f"FTLAB_HOME={env} has no conf/config.yaml")
        return root
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "conf" / "config.yaml").is_file():
            return folder
    src = Path(__file__).resolve().parents[2]
    if (src / "conf" / "config.yaml").is_file():
        return src
    raise ProjectNotFound("no conf/config.yaml in the current folder or its parents; "
                          "run ftlab from the project folder or set FTLAB_HOME")


def resolve(path: str | os.PathLike) -> Path:
    """An absolute path for a config value (relative = against the project root)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: Optional[str] = "utf-8",
                newline: Optional[str] = None) -> Iterator[IO]:
    """Write ``path`` all or nothing: into a temporary file in the same folder, renamed over
    ``path`` only when the block finishes. A crash leaves the old file (or none), never half a
    file. The folder is created if needed; the file gets the old file's mode, else 0644."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        binary = "b" in mode
        with os.fdopen(fd, mode, encoding=None if binary else encoding,
                       newline=None if binary else newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """``path.write_bytes(data)``, all or nothing (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """``path.write_text(text)``, all or nothing (see :func:`atomic_open`)."""
    with atomic_open(path, "w", encoding=encoding, newline="") as fh:
        fh.write(text)
