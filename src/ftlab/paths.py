"""Where the project lives: the folder holding ``conf/config.yaml``.

Order: ``$FTLAB_HOME``; the current folder or a parent of it that has ``conf/config.yaml``; the
source checkout this package was installed from (editable installs). Relative paths in configs
(data files, local model folders) are resolved against this root, never against the cwd.
"""

from __future__ import annotations

import os
from pathlib import Path


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
