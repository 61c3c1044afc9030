"""Client, retries, statement execution, dry runs, the job file and tuning-job polling.

Transient HTTP errors (429/500/502/503, rateLimitExceeded/backendError) are retried by
google-cloud-bigquery's own ``DEFAULT_RETRY`` with a configured deadline and backoff; failed query
jobs with a retryable job error are re-issued by ``DEFAULT_JOB_RETRY``. No hand-written HTTP loops.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

JOB_FILE = "bqml_job.json"
"""Written to the run folder the moment a tuning job is submitted."""


def make_client(cfg):
    """A ``bigquery.Client``: fake/local endpoint → anonymous; service-account file; else ADC."""
    from google.cloud import bigquery

    options = {"api_endpoint": cfg.api_endpoint} if cfg.api_endpoint else None
    if cfg.credentials_file:
        from google.oauth2 import service_account

        creds = service_account.Credentials.from_service_account_file(
            cfg.credentials_file, scopes=["https://www.googleapis.com/auth/bigquery",
                                          "https://www.googleapis.com/auth/cloud-platform"])
    elif cfg.api_endpoint and not cfg.api_endpoint.startswith("https://"):
        from google.auth.credentials import AnonymousCredentials

        creds = AnonymousCredentials()
    else:
        import google.auth

        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery"])
    return bigquery.Client(project=cfg.project, credentials=creds, location=cfg.location,
                           client_options=options)


def retries(cfg):
    """(HTTP retry, job retry) built from google-cloud-bigquery's defaults with our deadlines."""
    from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY

    http = DEFAULT_RETRY.with_deadline(cfg.http_retry_deadline_s).with_delay(
        initial=max(cfg.http_retry_initial_s, 0.001), maximum=60.0, multiplier=2.0)
    job = DEFAULT_JOB_RETRY.with_deadline(cfg.job_retry_deadline_s).with_delay(
        initial=max(cfg.http_retry_initial_s, 0.001), maximum=60.0, multiplier=2.0)
    return http, job


@dataclass
class Stats:
    """Bytes and seconds per statement kind, summed over the backend's life."""

    bytes_processed: dict = field(default_factory=lambda: defaultdict(int))
    bytes_billed: dict = field(default_factory=lambda: defaultdict(int))
    seconds: dict = field(default_factory=lambda: defaultdict(float))
    statements: list = field(default_factory=list)
    """(kind, sql, job_id) of every statement sent (or printed in a dry run)."""

    def add(self, kind: str, job, seconds: float) -> None:
        self.bytes_processed[kind] += int(getattr(job, "total_bytes_processed", 0) or 0)
        self.bytes_billed[kind] += int(getattr(job, "total_bytes_billed", 0) or 0)
        self.seconds[kind] += seconds

    def snapshot(self) -> tuple[dict, dict, dict]:
        return dict(self.bytes_processed), dict(self.bytes_billed), dict(self.seconds)

    def since(self, snap: tuple[dict, dict, dict]) -> dict[str, float]:
        """``cost/*`` and ``time/<kind>_s`` accumulated since ``snap``, in total and per statement kind."""
        bp, bb, sec = snap
        kinds = sorted(set(self.bytes_processed) | set(self.seconds))
        out: dict[str, float] = {"cost/bytes_processed": 0.0, "cost/bytes_billed": 0.0}
        for k in kinds:
            p = self.bytes_processed[k] - bp.get(k, 0)
            b = self.bytes_billed[k] - bb.get(k, 0)
            s = self.seconds[k] - sec.get(k, 0.0)
            if p == b == 0 and s == 0 and k in sec:
                continue
            out["cost/bytes_processed"] += p
            out["cost/bytes_billed"] += b
            out[f"cost/{k}/bytes_processed"] = float(p)
            out[f"cost/{k}/bytes_billed"] = float(b)
            out[f"time/{k}_s"] = round(s, 3)
        return out


def _params(params: Optional[dict]):
    from google.cloud import bigquery

    out = []
    for name, value in (params or {}).items():
        if isinstance(value, (list, tuple)):
            out.append(bigquery.ArrayQueryParameter(name, "STRING", list(value)))
        elif isinstance(value, bool):
            out.append(bigquery.ScalarQueryParameter(name, "BOOL", value))
        elif isinstance(value, int):
            out.append(bigquery.ScalarQueryParameter(name, "INT64", value))
        else:
            out.append(bigquery.ScalarQueryParameter(name, "STRING", str(value)))
    return out


class Runner:
    """Sends statements (or dry-runs them) and keeps the cost statistics."""

    def __init__(self, cfg, client=None, out=sys.stdout) -> None:
        self.cfg = cfg
        self._client = client
        self.stats = Stats()
        self.out = out
        self.http_retry, self.job_retry = retries(cfg)

    @property
    def client(self):
        if self._client is None:
            self._client = make_client(self.cfg)
        return self._client

    def job_config(self, params=None, dry_run=False, timeout_ms=None):
        from google.cloud import bigquery

        jc = bigquery.QueryJobConfig(query_parameters=_params(params), labels={"ftlab": "1"})
        if dry_run:
            jc.dry_run = True
            jc.use_query_cache = False
        if self.cfg.maximum_bytes_billed:
            jc.maximum_bytes_billed = int(self.cfg.maximum_bytes_billed)
        if timeout_ms:
            jc.job_timeout_ms = int(timeout_ms)
        return jc

    def dry_run(self, kind: str, sql: str, params=None) -> Optional[int]:
        """Print the statement with BigQuery's byte estimate; nothing is created."""
        self.stats.statements.append((kind, sql, None))
        try:
            job = self.client.query(sql, job_config=self.job_config(params, dry_run=True),
                                    location=self.cfg.location, retry=self.http_retry, job_retry=None)
            estimate = int(job.total_bytes_processed or 0)
            note = f"{estimate} bytes"
        except Exception as exc:  # objects the dry run did not create make later estimates fail
            estimate, note = None, f"estimate unavailable: {_short(exc)}"
        print(f"-- [dry run] {kind}: {note}\n{sql};\n", file=self.out)
        return estimate

    def run(self, kind: str, sql: str, params=None) -> list[dict]:
        """Run one statement to completion and return its rows as dicts."""
        t0 = time.monotonic()
        job = self.client.query(sql, job_config=self.job_config(params), location=self.cfg.location,
                                job_id_prefix=f"ftlab_{kind}_", retry=self.http_retry,
                                job_retry=self.job_retry)
        rows = [dict(r.items()) for r in job.result(retry=self.http_retry)]
        self.stats.add(kind, job, time.monotonic() - t0)
        self.stats.statements.append((kind, sql, job.job_id))
        return rows


def _short(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc).splitlines()[0][:300]


# -- the tuning job: deterministic id, job file, re-attach, polling ----------------------------

def read_job_file(*folders: Optional[Path]) -> Optional[dict]:
    """The first ``bqml_job.json`` found in the given folders (or below them)."""
    for folder in folders:
        if not folder:
            continue
        folder = Path(folder)
        direct = folder / JOB_FILE
        found = [direct] if direct.is_file() else sorted(folder.rglob(JOB_FILE)) if folder.is_dir() else []
        if found:
            return json.loads(found[0].read_text())
    return None


def write_job_file(folder: Path, record: dict) -> Path:
    path = Path(folder) / JOB_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    tmp.replace(path)
    return path


def submit_or_attach(runner: Runner, sql: str, job_id: str, timeout_ms=None) -> tuple[Any, bool]:
    """Insert the tuning job under ``job_id``; on 409 (already exists) fetch it instead.

    Returns ``(job, attached)``. ``job_retry`` is off: a tuning job is never silently re-issued.
    """
    from google.api_core import exceptions

    client = runner.client
    try:
        job = client.query(sql, job_config=runner.job_config(timeout_ms=timeout_ms), job_id=job_id,
                           location=runner.cfg.location, retry=runner.http_retry, job_retry=None)
        return job, False
    except exceptions.Conflict:
        return attach(runner, job_id), True


def attach(runner: Runner, job_id: str, location: Optional[str] = None):
    return runner.client.get_job(job_id, location=location or runner.cfg.location, retry=runner.http_retry)


def poll(runner: Runner, job, label: str = "tuning") -> Any:
    """Reload ``job`` with backoff until DONE, showing state and elapsed time; return it."""
    cfg = runner.cfg
    wait = max(cfg.poll_interval_s, 0.0)
    t0 = time.monotonic()
    progress = _progress(cfg.progress, f"BigQuery ML {label} job {job.job_id}")
    try:
        while True:
            job.reload(retry=runner.http_retry)
            progress(job.state, time.monotonic() - t0)
            if job.state == "DONE":
                return job
            time.sleep(wait)
            wait = min(max(wait * 1.5, 0.01), cfg.poll_max_interval_s)
    finally:
        progress(None, time.monotonic() - t0)


def _progress(enabled: bool, title: str):
    """A rich status line (state, elapsed); a no-op when disabled or rich is missing."""
    if not enabled:
        return lambda state, elapsed: None
    try:
        from rich.console import Console
        from rich.status import Status
    except ImportError:
        return lambda state, elapsed: None
    status = Status(title, console=Console(stderr=True))
    status.start()

    def update(state, elapsed):
        if state is None:
            status.stop()
        else:
            status.update(f"{title}: {state} ({elapsed:,.0f} s)")
    return update
