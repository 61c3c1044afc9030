"""Test-only crash points: ``FTLAB_TEST_KILL_AT=<point>`` makes the process SIGKILL itself there.

The crash-safety tests need a real process to die at an exact moment (half-way through a
checkpoint write, after some prediction chunks) without mocking the code that is being
tested. Code that writes state a later command relies on calls :func:`kill_point` at the
moments that matter; it does nothing unless the environment variable names that very point.
Never set it outside tests: the process dies without cleanup, by design.

Points (``@N`` is the optimizer step or the number of chunks written):

* ``checkpoint.partial@N`` (the local trainer's checkpoints): the new checkpoint's adapter is in ``checkpoint.tmp``,
  its ``state.pt`` and ``trainer_state.json`` are not.
* ``checkpoint.swap@N`` (the local trainer's checkpoints): the previous checkpoint was renamed to ``checkpoint.old``,
  the complete new one is still ``checkpoint.tmp``.
* ``predict.chunk@N`` (``ftlab predict``): N chunks are kept in ``<output>.partial/``.
"""

from __future__ import annotations

import os
import signal

ENV = "FTLAB_TEST_KILL_AT"


def kill_point(name: str, at: int | None = None) -> None:
    """SIGKILL this process if ``$FTLAB_TEST_KILL_AT`` is ``name`` (or ``name@at``)."""
    want = os.environ.get(ENV)
    if want and want == (name if at is None else f"{name}@{at}"):
        os.kill(os.getpid(), signal.SIGKILL)
