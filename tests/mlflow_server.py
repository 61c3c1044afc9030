"""A real ``mlflow server`` for tests: one worker, job execution off, its own process group.

``MlflowServer(store_dir).start()`` serves ``sqlite:///<store_dir>/mlflow.db`` (artifacts proxied
into ``<store_dir>/mlartifacts``) on a free 127.0.0.1 port; ``kill()`` SIGKILLs the whole group
(a crash, not a shutdown) and ``start()`` again brings it back on the same port and store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path


class MlflowServer:
    def __init__(self, store_dir: Path) -> None:
        from ftlab.cli.ui_cmd import free_port

        self.store_dir = Path(store_dir)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 120.0) -> "MlflowServer":
        from ftlab.cli.ui_cmd import server_command

        uri = f"sqlite:///{self.store_dir / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
               "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
        self.starts += 1
        log = (self.store_dir / f"server-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(server_command(uri, "127.0.0.1", self.port), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"mlflow server did not start: {self.log_tail()}")

    def log_tail(self) -> str:
        return (self.store_dir / f"server-{self.starts}.log").read_text(errors="replace")[-2000:]

    def kill(self) -> None:
        """SIGKILL the server's process group and wait until it is gone."""
        from ftlab.cli.ui_cmd import group_members

        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while group_members(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.proc = None
