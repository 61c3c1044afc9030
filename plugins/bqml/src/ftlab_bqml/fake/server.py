"""A local BigQuery REST server (stdlib ``ThreadingHTTPServer``, 127.0.0.1 only) for tests.

Speaks the part of the v2 REST API that google-cloud-bigquery 3.x uses for ftlab's statements:
jobs.insert/get/cancel, getQueryResults (schema call, then rows call), jobs.query, multipart uploads
(NDJSON, Parquet), tables.get, tabledata.list (paged) and models.get. Jobs move PENDING → RUNNING → DONE over polls.
Admin endpoints under ``/_fake/``: ``GET log``, ``GET state``, ``POST faults`` (JSON), ``POST reset``.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from ftlab_bqml.fake.engine import Engine

API = "/bigquery/v2/projects/([^/]+)"
ROUTES = [
    ("POST", re.compile(rf"^/upload{API}/jobs$"), "upload"),
    ("POST", re.compile(rf"^{API}/jobs$"), "jobs.insert"),
    ("POST", re.compile(rf"^{API}/jobs/([^/]+)/cancel$"), "jobs.cancel"),
    ("GET", re.compile(rf"^{API}/jobs/([^/]+)$"), "jobs.get"),
    ("GET", re.compile(rf"^{API}/queries/([^/]+)$"), "jobs.getQueryResults"),
    ("POST", re.compile(rf"^{API}/queries$"), "jobs.query"),
    ("GET", re.compile(rf"^{API}/datasets/([^/]+)/tables/([^/]+)$"), "tables.get"),
    ("GET", re.compile(rf"^{API}/datasets/([^/]+)/tables/([^/]+)/data$"), "tabledata.list"),
    ("GET", re.compile(rf"^{API}/datasets/([^/]+)/models/([^/]+)$"), "models.get"),
]
HTTP_REASONS = {429: "rateLimitExceeded", 500: "backendError", 502: "badGateway", 503: "backendError"}


@dataclass
class Faults:
    """What to break. ``http``: ``[{"nth": 3, "code": 429}, {"route": "jobs.get", "nth": 2, "code": 500}]``
    (``nth`` counts requests, overall or per route, from 1)."""

    http: list = field(default_factory=list)
    row_ids: set = field(default_factory=set)
    """ids of rows whose ML.GENERATE_TEXT status is RESOURCE EXHAUSTED ..."""
    row_attempts: int = 0
    """... for their first ``row_attempts`` attempts."""
    row_ids_always: set = field(default_factory=set)
    """ids of rows that fail on every attempt."""
    row_seen: dict = field(default_factory=dict)
    """Attempts per row id since the row faults were last set (reset by ``update``)."""
    hold_tuning: bool = False
    """Tuning jobs stay RUNNING while set."""
    tune_fail_at_poll: Optional[int] = None
    """A tuning job fails (DONE + errorResult) at this poll."""

    def update(self, **kw) -> None:
        for k, val in kw.items():
            if not hasattr(self, k):
                raise ValueError(f"unknown fault {k!r}")
            setattr(self, k, set(val) if k in ("row_ids", "row_ids_always") else val)
            if k.startswith("row_"):
                self.row_seen.clear()

    def row_fails(self, rid: str) -> bool:
        """Count an attempt for row ``rid``; True when it must come back RESOURCE EXHAUSTED."""
        self.row_seen[rid] = self.row_seen.get(rid, 0) + 1
        return rid in self.row_ids_always or (rid in self.row_ids and self.row_seen[rid] <= self.row_attempts)


@dataclass
class Job:
    project: str
    job_id: str
    location: str
    configuration: dict
    kind: str
    result: object = None
    error: Optional[dict] = None
    polls: int = 0
    running_after: int = 0
    done_after: int = 1
    created: float = field(default_factory=time.time)
    started: Optional[float] = None
    ended: Optional[float] = None
    applied: bool = False
    cancelled: bool = False


class State:
    def __init__(self, tune_polls: int = 3, query_polls: int = 1, gcs_files: Optional[dict] = None) -> None:
        self.lock = threading.RLock()
        self.faults = Faults()
        self.engine = Engine(self.faults, gcs_files)
        self.jobs: dict[str, Job] = {}
        self.log: list[dict] = []
        self.counts: dict[str, int] = {}
        self.tune_polls, self.query_polls = tune_polls, query_polls

    def state_of(self, job: Job) -> str:
        """Advance the job by its poll count (applying its effect once when it reaches DONE)."""
        if job.ended is not None:
            return "DONE"
        is_tune = job.kind == "create_tuned_model"
        if is_tune and self.faults.tune_fail_at_poll is not None and job.polls >= self.faults.tune_fail_at_poll:
            job.error = {"reason": "internalError", "location": "tuning",
                         "message": f"Tuning pipeline failed at poll {job.polls} (injected by the ftlab fake)"}
        elif job.cancelled:
            job.error = {"reason": "stopped", "message": "Job execution was cancelled: User requested cancellation"}
        elif job.polls < job.running_after:
            return "PENDING"
        elif job.polls < job.done_after or (is_tune and self.faults.hold_tuning):
            job.started = job.started or time.time()
            return "RUNNING"
        job.started = job.started or time.time()
        job.ended = time.time()
        if job.error is None and getattr(job.result, "effect", None) and not job.applied:
            job.result.effect()
            job.applied = True
        return "DONE"

    def job_json(self, job: Job) -> dict:
        state = self.state_of(job)
        stats = {"creationTime": str(int(job.created * 1000))}
        if job.started:
            stats["startTime"] = str(int(job.started * 1000))
        if job.ended:
            stats["endTime"] = str(int(job.ended * 1000))
        res = job.result
        if res is not None and hasattr(res, "statement_type"):
            billed = 0 if not res.bytes_processed else max(10 << 20, -(-res.bytes_processed // (1 << 20)) << 20)
            stats["totalBytesProcessed"] = str(res.bytes_processed)
            stats["query"] = {"statementType": res.statement_type, "totalBytesProcessed": str(res.bytes_processed),
                              "totalBytesBilled": str(billed if state == "DONE" else 0)}
        elif isinstance(res, dict):  # load job
            stats["load"] = res
        status = {"state": state}
        if state == "DONE" and job.error:
            status.update(errorResult=job.error, errors=[job.error])
        return {"kind": "bigquery#job", "id": f"{job.project}:{job.location}.{job.job_id}",
                "selfLink": "", "jobReference": self.ref(job), "configuration": job.configuration,
                "status": status, "statistics": stats, "user_email": "fake@ftlab.invalid"}

    @staticmethod
    def ref(job: Job) -> dict:
        return {"projectId": job.project, "jobId": job.job_id, "location": job.location}


def _params(query_cfg: dict) -> dict:
    out = {}
    for p in query_cfg.get("queryParameters", []):
        ptype, pval = p.get("parameterType", {}), p.get("parameterValue", {})
        if ptype.get("type") == "ARRAY":
            out[p["name"]] = [x.get("value") for x in pval.get("arrayValues", [])]
        else:
            val = pval.get("value")
            out[p["name"]] = int(val) if ptype.get("type") == "INT64" and val is not None else val
    return out


def _cell(val):
    if val is None:
        return None
    if isinstance(val, bool):
        return "true" if val else "false"
    return repr(val) if isinstance(val, float) else str(val)


def _api_error(code: int, reason: str, message: str) -> dict:
    return {"error": {"code": code, "message": message, "errors": [{"reason": reason, "message": message,
                                                                    "domain": "global"}], "status": reason}}
