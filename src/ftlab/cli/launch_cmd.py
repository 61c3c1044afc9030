"""``ftlab launch``: one run over several processes, started by an existing launcher.

    ftlab launch --nproc N [+experiment=NAME] [key=value ...]      torchrun, N processes on this machine
    ftlab launch --nproc N --nnodes M --node-rank K --rdzv-endpoint HOST:PORT  [...]   torchrun, M machines
    ftlab launch [+experiment=NAME] backend.ray_train.num_workers=N [...]   Ray Train (docs/distributed.md)

Every process runs ``python -m ftlab.cli.launch_cmd --as-rank ARGS``: rank 0 is a plain ``ftlab ARGS``
run (MLflow, run folder, evaluator); the other ranks follow it (:mod:`ftlab.ranks`). The backend
must support it (a ``follow()`` method); docs/distributed.md says what each backend's ranks share.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Sequence

TORCHRUN_FLAGS = {"--nnodes": "--nnodes", "--node-rank": "--node-rank", "--rdzv-endpoint": "--rdzv-endpoint",
                  "--rdzv-id": "--rdzv-id", "--master-port": "--master-port"}
USAGE = __doc__.split("\n\n")[1]


def _split(args: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Leading launch options (``--nproc 2`` or ``--nproc=2``) and the ``ftlab`` arguments after them."""
    opts: dict[str, str] = {}
    rest = list(args)
    while rest and rest[0].split("=", 1)[0] in ("--nproc", *TORCHRUN_FLAGS):
        flag = rest.pop(0)
        if "=" in flag:
            key, value = flag.split("=", 1)
        elif rest:
            key, value = flag, rest.pop(0)
        else:
            raise SystemExit(f"ftlab launch: {flag} needs a value\n{USAGE}")
        opts[key] = value
    return opts, rest


def torchrun_command(opts: dict[str, str], args: Sequence[str]) -> list[str]:
    """The ``python -m torch.distributed.run`` command line of one launch."""
    try:
        nproc = int(opts["--nproc"])
    except ValueError:
        raise SystemExit(f"ftlab launch: --nproc must be a whole number, not {opts['--nproc']!r}") from None
    if nproc < 1:
        raise SystemExit("ftlab launch: --nproc must be at least 1")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    extra = [f"{TORCHRUN_FLAGS[k]}={v}" for k, v in opts.items() if k in TORCHRUN_FLAGS]
    if not any(e.startswith(("--rdzv-endpoint", "--nnodes")) for e in extra):
        cmd.append("--standalone")  # one machine: a local rendezvous on a free port
    return [*cmd, *extra, "-m", "ftlab.cli.launch_cmd", "--as-rank", *args]


def as_rank(args: list[str]) -> int:
    """One process of a launched run (torchrun's ``RANK``): rank 0 runs, the others follow."""
    from ftlab import ranks

    if not ranks.follower():
        from ftlab.cli.run_cmd import main as run_main

        return run_main(args)
    ranks.follow(ranks.compose_typed(args))
    return 0


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if args[:1] == ["--as-rank"]:
        return as_rank(args[1:])
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    opts, rest = _split(args)
    if {"-m", "--multirun"} & set(rest):
        raise SystemExit("ftlab launch runs one run over several processes; a multirun (-m) spreads runs "
                         "instead: use a sweep launcher (docs/sweeps.md)")
    if "--nproc" in opts:
        return subprocess.call(torchrun_command(opts, rest))
    if set(opts) - {"--nproc"}:
        raise SystemExit(f"ftlab launch: {', '.join(opts)} need --nproc (torchrun)\n{USAGE}")
    from ftlab.config.compose import ConfigError
    from ftlab.launch_ray import launch

    try:
        return launch(rest)
    except ConfigError as exc:
        print(f"ftlab launch: config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
