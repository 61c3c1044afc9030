"""``ftlab`` command line: subcommands, else a Hydra run.

    ftlab [+experiment=NAME] [key=value ...]    run an experiment (Hydra; -m for sweeps)
    ftlab --config-dir DIR +experiment=MINE     run your own experiment from DIR/experiment/MINE.yaml
    ftlab init DIR --data FILE                  write a starting experiment for your data file into DIR
    ftlab --help | --cfg job +experiment=NAME   Hydra help / show the composed config
    ftlab plugins                               registered backends and their packages
    ftlab config-schema                         every config key, its type, default and meaning
    ftlab report RUN_ID|EXPERIMENT              HTML + Markdown report
    ftlab ui [--port N]                         MLflow UI over the project's store
    ftlab predict RUN_ID --input F --output F   apply a run's model to new rows
    ftlab sync RUN_DIR                          upload what a run kept while MLflow was down
    ftlab replay RUN [key=value] [--allow-drift] run a recorded run again, compare its metrics
    ftlab launch --nproc N [key=value ...]      one run over N processes (torchrun; or Ray Train)

Nothing here imports torch, transformers or google-cloud.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

SUBCOMMANDS = {
    "init": "ftlab.cli.init_cmd",
    "plugins": "ftlab.cli.plugins_cmd",
    "report": "ftlab.cli.report_cmd",
    "ui": "ftlab.cli.ui_cmd",
    "predict": "ftlab.cli.predict_cmd",
    "sync": "ftlab.cli.sync_cmd",
    "replay": "ftlab.cli.replay_cmd",
    "launch": "ftlab.cli.launch_cmd",
    "config-schema": "ftlab.config.reference",
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[args[0]])
        return module.main(args[1:]) or 0
    from ftlab.cli.run_cmd import main as run_main

    return run_main(args)


if __name__ == "__main__":
    sys.exit(main())
