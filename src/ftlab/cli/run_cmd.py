"""``ftlab [--config-dir DIR] [overrides]``: compose with Hydra, check the config, run the experiment.

``--config-dir DIR`` puts a user's own config folder (``DIR/experiment/*.yaml``, ``DIR/data/*.yaml``,
``DIR/prompt/*.yaml`` ...) before the project's ``conf/``, for the check and for the run alike.
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

HYDRA_FLAGS_NO_CHECK = {"-m", "--multirun", "--help", "-h", "--hydra-help", "--info", "-i",
                        "--shell-completion", "-sc", "--version"}


def _overrides(args: Sequence[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-dir", "-cd",
                 "--config-path", "-cp", "--experimental-rerun"):
            skip = True
            continue
        if not a.startswith("-"):
            out.append(a)
    return out


def config_dir(args: Sequence[str]) -> str | None:
    """The value of ``--config-dir DIR`` / ``-cd DIR`` / ``--config-dir=DIR`` (the last one wins)."""
    found = None
    for i, a in enumerate(args):
        if a in ("--config-dir", "-cd") and i + 1 < len(args):
            found = args[i + 1]
        elif a.startswith(("--config-dir=", "-cd=")):
            found = a.split("=", 1)[1]
    return found


def share_config_store() -> None:
    """Make a deep copy of Hydra's ConfigStore the live singleton itself.

    Hydra 1.3.2 deep-copies the whole store (every stored schema) each time it builds a config
    repository, because each structured-config source keeps a reference to it. ``--help`` builds ~90
    of them (most of its 0.86 s on the 2-core dev machine), a sweep one per job. Hydra's main branch
    reads the live singleton instead (facebookresearch/hydra#2928); this gives 1.3 the same behaviour.
    """
    from hydra.core.config_store import ConfigStore

    ConfigStore.__deepcopy__ = lambda self, memo: self


def main(args: Sequence[str]) -> int:
    import hydra

    from ftlab.config.compose import ConfigError, compose, install_resolvers, register_schemas
    from ftlab.paths import ProjectNotFound, project_root
    from ftlab.plugins import PluginError, get_plugins

    logging.basicConfig(level=logging.INFO, format="[ftlab] %(message)s")
    share_config_store()
    try:
        plugins = get_plugins()
        conf_dir = project_root() / "conf"
        if not HYDRA_FLAGS_NO_CHECK.intersection(args):
            # Check the whole config before Hydra starts, so a typo gets a named key and a
            # suggestion instead of a stack trace, and nothing is created.
            from ftlab.config.compose import validate

            validate(compose(_overrides(args), plugins, config_dir=config_dir(args)))
        register_schemas(plugins)
        install_resolvers()
    except (ConfigError, PluginError, ProjectNotFound) as exc:
        from ftlab.config.origin import locate

        where = locate(getattr(exc, "keys", ()), _overrides(args), config_dir(args))
        print(f"ftlab: config error: {exc}{where}", file=sys.stderr)
        return 2

    def task(cfg) -> float:
        from ftlab.data import DataError
        from ftlab.runner import StageError, run
        from ftlab.tracking.mlflow_tracker import TrackingError

        from ftlab.sweeps.attempts import record_job_start, record_job_value

        record_job_start(cfg)  # a job of a search: its trial learns where its run folder is
        try:
            value = run(cfg)
        except (DataError, ConfigError, StageError, TrackingError, PluginError) as exc:
            print(f"ftlab: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        record_job_value(cfg, value)  # a job of a search: its trial learns the result even if its return is lost
        return value

    app = hydra.main(config_path=str(conf_dir), config_name="config", version_base="1.3")(task)
    saved = sys.argv
    sys.argv = ["ftlab", *args]
    try:
        app()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        sys.argv = saved
    return 0
