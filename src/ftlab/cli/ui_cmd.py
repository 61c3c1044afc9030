"""``ftlab ui [--port N] [--host 127.0.0.1]``: the MLflow UI over the project's store.

Starts ``mlflow server`` with one worker and job execution disabled (2 processes, ~0.5 GB instead
of 10 and ~2.4 GB), in its own process group, waits for ``/health``, prints the URL and, on Ctrl-C
or SIGTERM, stops the whole group: SIGTERM, then SIGKILL after a timeout. The store is the one
``ftlab`` logs to: ``MLFLOW_TRACKING_URI``, else ``sqlite:///<project>/mlflow.db`` with artifacts
in ``<project>/mlartifacts``. Tests use :func:`start_server` and :func:`stop_server` directly.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence


class UIError(RuntimeError):
    pass


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    uri: str
    """The backend store the server reads."""
    log: Path
    """The server's stdout and stderr."""

    @property
    def pgid(self) -> int:
        return self.proc.pid  # start_new_session=True: the server leads its own group


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_busy(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def artifacts_destination(uri: str) -> Optional[Path]:
    """Where the server stores proxied artifacts: ``mlartifacts/`` beside a sqlite database.

    Runs logged by ftlab carry absolute ``file://`` artifact URIs, which the server reads directly;
    this folder only matters for experiments created through the server itself.
    """
    from ftlab.paths import project_root
    from ftlab.tracking.mlflow_tracker import default_tracking_uri

    if uri == default_tracking_uri():
        return project_root() / "mlartifacts"
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).parent / "mlartifacts"
    return None


def server_command(uri: str, host: str, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host,
           "--port", str(port), "--workers", "1"]
    dest = artifacts_destination(uri)
    if dest is not None:
        cmd += ["--artifacts-destination", str(dest)]
    return cmd


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid`` (Linux ``/proc``)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(port: int = 0, host: str = "127.0.0.1", uri: Optional[str] = None,
                 timeout: float = 90.0, log_path: Optional[Path] = None) -> Server:
    """Start ``mlflow server`` and return once ``/health`` answers 200 (port 0 = a free one)."""
    from ftlab.tracking.mlflow_tracker import resolve_tracking_uri

    uri = resolve_tracking_uri(uri)
    if uri.startswith(("http://", "https://")):
        raise UIError(f"the tracking URI is already a server: open {uri}")
    port = port or free_port(host)
    if _port_busy(host, port):
        raise UIError(f"port {port} on {host} is in use; pass --port N (or --port 0 for a free one)")
    dest = artifacts_destination(uri)
    if dest is not None:
        dest.mkdir(parents=True, exist_ok=True)
    log_path = log_path or Path(tempfile.gettempdir()) / f"ftlab-ui-{port}.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(server_command(uri, host, port), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    server = Server(proc, f"http://{host}:{port}", uri, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            stop_server(server)
            raise UIError(f"mlflow server exited with code {proc.returncode}:\n{tail}")
        if _health(server.url):
            return server
        time.sleep(0.3)
    stop_server(server)
    raise UIError(f"mlflow server did not answer {server.url}/health within {timeout:.0f} s "
                  f"(log: {log_path})")


def stop_server(server: Server, timeout: float = 10.0) -> None:
    """SIGTERM to the server's process group; SIGKILL whatever is left after ``timeout``."""
    pgid = server.pgid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if server.proc.poll() is not None and not group_members(pgid):
                return
            time.sleep(0.1)
    server.proc.poll()


def main(args: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="ftlab ui", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=5000, help="port (default 5000; 0 = a free one)")
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument("--tracking-uri", default=None, help="store (default: as `ftlab` runs)")
    ns = p.parse_args(list(args))
    if ns.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"ftlab ui: warning: {ns.host} exposes the UI beyond this machine", file=sys.stderr)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    # explicit handlers: a shell may start a background job with SIGINT ignored
    old = {sig: signal.signal(sig, on_term) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = None
    try:
        server = start_server(ns.port, ns.host, ns.tracking_uri)
        print(f"MLflow UI: {server.url}")
        print(f"store {server.uri}; server process group {server.pgid}; log {server.log}")
        print("Ctrl-C stops it.", flush=True)
        server.proc.wait()
        print(f"ftlab ui: mlflow server exited with code {server.proc.returncode} "
              f"(log: {server.log})", file=sys.stderr)
        return 1
    except UIError as exc:
        print(f"ftlab ui: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nstopping the MLflow server ...", file=sys.stderr)
        return 0
    finally:
        if server is not None:
            stop_server(server)
        for sig, handler in old.items():
            signal.signal(sig, handler)
