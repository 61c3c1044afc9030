"""HTTP layer of the fake: routing, fault injection, request log, and :class:`FakeBigQuery`."""

from __future__ import annotations

import io
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, urlparse

from ftlab_bqml.fake.engine import STATEMENT_TYPES, SqlError, Table  # noqa: F401
from ftlab_bqml.fake.server import HTTP_REASONS, ROUTES, Job, State, _api_error, _cell, _params


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State  # set on the subclass built per server

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body = self._body() if method == "POST" else b""
        st = self.state
        if url.path.startswith("/_fake/"):
            return self._admin(method, url.path[len("/_fake/"):], body)
        for m, pattern, route in ROUTES:
            match = pattern.match(url.path) if m == method else None
            if match:
                break
        else:
            return self._reply(404, _api_error(404, "notFound", f"Not found: URL {url.path}"))
        with st.lock:
            n = len(st.log) + 1
            st.counts[route] = st.counts.get(route, 0) + 1
            entry = {"n": n, "method": method, "route": route, "path": url.path, "query": query, "status": 200,
                     "job_id": match.group(2) if route in ("jobs.get", "jobs.getQueryResults", "jobs.cancel") else None}
            st.log.append(entry)
            for fault in st.faults.http:
                hit = (fault.get("route") == route and st.counts[route] == fault["nth"]) if fault.get("route") \
                    else n == fault["nth"]
                if hit:
                    code = int(fault.get("code", 500))
                    entry["status"] = code
                    return self._reply(code, _api_error(code, HTTP_REASONS.get(code, "backendError"),
                                                        f"injected HTTP {code} (ftlab fake)"))
            try:
                code, reply = getattr(self, "_" + route.replace(".", "_"))(match, query, body, entry)
            except SqlError as exc:
                code = {"notFound": 404, "duplicate": 409}.get(exc.reason, 400)
                reply = _api_error(code, exc.reason, exc.message)
            except Exception as exc:  # a bug in the fake: non-retryable reason, so tests fail fast
                code, reply = 500, _api_error(500, "fakeServerBug", f"{type(exc).__name__}: {exc}")
            entry["status"] = code
        self._reply(code, reply)

    # -- admin -----------------------------------------------------------------------------------
    def _admin(self, method: str, what: str, body: bytes) -> None:
        st = self.state
        with st.lock:
            if what == "log":
                return self._reply(200, {"log": [dict(e, statement=self._statement_of(e)) for e in st.log]})
            if what == "state":
                return self._reply(200, {
                    "tables": {k: len(t.rows) for k, t in st.engine.tables.items()},
                    "models": {k: m["kind"] for k, m in st.engine.models.items()},
                    "jobs": {k: {"kind": j.kind, "state": st.state_of(j) if j.ended else
                                 ("RUNNING" if j.started else "PENDING"), "polls": j.polls}
                             for k, j in st.jobs.items()}})
            if method == "POST" and what == "faults":
                st.faults.update(**json.loads(body or b"{}"))
                return self._reply(200, {"ok": True})
            if method == "POST" and what == "reset":
                st.__init__(st.tune_polls, st.query_polls, st.engine.gcs_files)
                return self._reply(200, {"ok": True})
        self._reply(404, _api_error(404, "notFound", f"unknown admin call {what}"))

    def _statement_of(self, entry: dict) -> Optional[str]:
        job = self.state.jobs.get(entry.get("job_id") or "")
        return job.kind if job else entry.get("statement")

    # -- API ---------------------------------------------------------------------------------------
    def _find(self, project: str, job_id: str, query: dict) -> Job:
        job = self.state.jobs.get(job_id)
        loc = query.get("location")
        if job is None or job.project != project or (loc and loc.upper() != job.location.upper()):
            raise SqlError("notFound", f"Not found: Job {project}:{loc or 'US'}.{job_id}")
        return job

    def _new_job(self, project: str, ref: dict, configuration: dict, kind: str) -> Job:
        job_id = ref.get("jobId") or str(uuid.uuid4())
        if job_id in self.state.jobs:
            raise SqlError("duplicate", f"Already Exists: Job {project}:{ref.get('location') or 'US'}.{job_id}")
        return Job(project=project, job_id=job_id, location=ref.get("location") or "US",
                   configuration=configuration, kind=kind)

    def _run_query(self, project: str, ref: dict, configuration: dict, entry: dict) -> tuple[Job, bool]:
        qcfg = configuration.get("query", {})
        dry = bool(configuration.get("dryRun"))
        try:
            kind, _ = self.state.engine.classify(qcfg.get("query", ""))
        except SqlError:
            kind = "invalid"
        entry["job_id"], entry["statement"] = ref.get("jobId"), kind
        job = self._new_job(project, ref, configuration, kind)
        entry["job_id"] = job.job_id
        try:
            job.result = self.state.engine.execute(qcfg.get("query", ""), _params(qcfg), dry_run=dry)
        except SqlError as exc:
            job.error = {"reason": exc.reason, "location": "query", "message": exc.message}
        if kind == "create_tuned_model" and job.error is None:
            job.running_after, job.done_after = 1, self.state.tune_polls
        else:
            job.done_after = 0 if (job.error or dry) else self.state.query_polls
        if not dry:
            self.state.jobs[job.job_id] = job
        return job, dry

    def _jobs_insert(self, match, query, body, entry):
        project = match.group(1)
        req = json.loads(body or b"{}")
        ref = dict(req.get("jobReference") or {}, projectId=project)
        ref.setdefault("location", query.get("location") or "US")
        configuration = req.get("configuration", {})
        if "query" not in configuration:
            raise SqlError("invalid", "the ftlab fake only runs query jobs through jobs.insert")
        job, _dry = self._run_query(project, ref, configuration, entry)
        return 200, self.state.job_json(job)

    def _jobs_get(self, match, query, body, entry):
        job = self._find(match.group(1), match.group(2), query)
        job.polls += 1
        return 200, self.state.job_json(job)

    def _jobs_cancel(self, match, query, body, entry):
        job = self._find(match.group(1), match.group(2), query)
        job.cancelled = True
        return 200, {"kind": "bigquery#jobCancelResponse", "job": self.state.job_json(job)}

    def _results(self, job: Job, query: dict, kind: str) -> dict:
        done = self.state.state_of(job) == "DONE"
        out = {"kind": kind, "jobReference": self.state.ref(job), "jobComplete": done}
        if not done:
            return out
        if job.error:
            raise SqlError(job.error["reason"], job.error["message"])
        res = job.result
        if res.schema is not None:
            out["schema"] = {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in res.schema]}
        out["totalRows"] = str(len(res.rows))
        out["totalBytesProcessed"] = str(res.bytes_processed)
        if query.get("maxResults") != "0" and res.schema is not None:
            start = int(query.get("startIndex") or 0)
            out["rows"] = [{"f": [{"v": _cell(r.get(n))} for n, _ in res.schema]} for r in res.rows[start:]]
        return out

    def _jobs_getQueryResults(self, match, query, body, entry):
        job = self._find(match.group(1), match.group(2), query)
        job.polls += 1
        return 200, self._results(job, query, "bigquery#getQueryResultsResponse")

    def _jobs_query(self, match, query, body, entry):
        project = match.group(1)
        req = json.loads(body or b"{}")
        configuration = {"query": {"query": req.get("query", ""), "useLegacySql": False,
                                   "queryParameters": req.get("queryParameters", [])},
                         "dryRun": req.get("dryRun", False)}
        ref = {"projectId": project, "jobId": "job_" + uuid.uuid4().hex, "location": req.get("location") or "US"}
        job, dry = self._run_query(project, ref, configuration, entry)
        job.done_after = 0
        if job.error:
            raise SqlError(job.error["reason"], job.error["message"])
        return 200, self._results(job, {}, "bigquery#queryResponse")

    def _upload(self, match, query, body, entry):
        project = match.group(1)
        ctype = self.headers.get("Content-Type", "")
        if query.get("uploadType") != "multipart" or "boundary=" not in ctype:
            raise SqlError("invalid", "the ftlab fake supports uploadType=multipart only")
        boundary = ctype.split("boundary=", 1)[1].strip().strip('"').encode()
        parts = [p for p in body.split(b"--" + boundary) if p.strip() not in (b"", b"--")]
        meta_raw, data = (p.split(b"\r\n\r\n", 1)[1] for p in parts[:2])
        meta = json.loads(meta_raw.strip())
        data = data[:-2] if data.endswith(b"\r\n") else data
        load = meta["configuration"]["load"]
        dest = load["destinationTable"]
        fmt = load.get("sourceFormat", "CSV")
        if fmt == "NEWLINE_DELIMITED_JSON":
            rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        elif fmt == "PARQUET":
            import pyarrow.parquet as pq

            rows = pq.read_table(io.BytesIO(data)).to_pylist()
        else:
            raise SqlError("invalid", f"the ftlab fake does not load {fmt}")
        fields = (load.get("schema") or {}).get("fields")
        schema = [(f["name"], f.get("type", "STRING")) for f in fields] if fields else \
            [(k, "STRING") for k in (rows[0] if rows else {})]
        key = f"{dest['projectId']}.{dest['datasetId']}.{dest['tableId']}"
        mode = load.get("writeDisposition", "WRITE_APPEND")
        existing = self.state.engine.tables.get(key)
        if mode == "WRITE_EMPTY" and existing and existing.rows:
            raise SqlError("duplicate", f"Already Exists: Table {key}")
        if mode == "WRITE_APPEND" and existing:
            rows = existing.rows + rows
        ref = dict(meta.get("jobReference") or {}, projectId=project)
        ref.setdefault("location", query.get("location") or "US")
        job = self._new_job(project, ref, meta["configuration"], "upload")
        entry["job_id"], entry["statement"] = job.job_id, "upload"
        table = Table(schema, rows)
        job.result = {"inputFiles": "1", "inputFileBytes": str(len(data)), "outputRows": str(len(rows)),
                      "outputBytes": str(len(data))}
        job.done_after = self.state.query_polls
        self.state.engine.tables[key] = table  # visible once DONE in reality; immediate is enough here
        self.state.jobs[job.job_id] = job
        return 200, self.state.job_json(job)

    def _tables_get(self, match, query, body, entry):
        project, dataset, name = match.groups()
        table = self.state.engine.table(project, dataset, name)
        return 200, {"kind": "bigquery#table", "id": f"{project}:{dataset}.{name}", "type": "TABLE",
                     "tableReference": {"projectId": project, "datasetId": dataset, "tableId": name},
                     "schema": {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in table.schema]},
                     "numRows": str(len(table.rows)), "location": "US"}

    def _tabledata_list(self, match, query, body, entry):
        """Rows of a table, ``selectedFields`` only, paged by ``maxResults`` (default 50,000) with
        ``pageToken`` = the next row's offset, as google-cloud-bigquery's ``list_rows`` reads them."""
        table = self.state.engine.table(*match.groups())
        names = [n for n, _ in table.schema]
        chosen = query.get("selectedFields")
        if chosen:
            unknown = [c for c in chosen.split(",") if c not in names]
            if unknown:
                raise SqlError("invalid", f"Field {unknown[0]} not found in the table schema")
            names = [n for n in names if n in chosen.split(",")]
        start = int(query.get("pageToken") or query.get("startIndex") or 0)
        size = int(query.get("maxResults") or 50_000)
        page = table.rows[start:start + size]
        out = {"kind": "bigquery#tableDataList", "totalRows": str(len(table.rows)),
               "rows": [{"f": [{"v": _cell(r.get(n))} for n in names]} for r in page]}
        if start + size < len(table.rows):
            out["pageToken"] = str(start + size)
        return 200, out

    def _models_get(self, match, query, body, entry):
        project, dataset, name = match.groups()
        model = self.state.engine.model(project, dataset, name)
        out = {"kind": "bigquery#model", "etag": "fake",
               "modelReference": {"projectId": project, "datasetId": dataset, "modelId": name},
               "modelType": "MODEL_TYPE_UNSPECIFIED", "location": "US",
               "remoteModelInfo": {"endpoint": model["endpoint"], "connection": model["connection"]}}
        if model["kind"] == "tuned":
            opt = model["options"]
            out["trainingRuns"] = [{"trainingOptions": {
                "maxIterations": str(int(opt.get("max_iterations", 0))),
                "learnRateStrategy": "CONSTANT", "inputLabelColumns": opt.get("input_label_cols", []),
                "dataSplitMethod": opt.get("data_split_method")}}]
        return 200, out


class FakeBigQuery:
    """The fake server; ``with FakeBigQuery() as fake: fake.url`` (port 0 = any free port)."""

    def __init__(self, port: int = 0, tune_polls: int = 3, query_polls: int = 1,
                 gcs_files: Optional[dict] = None) -> None:
        self.state = State(tune_polls=tune_polls, query_polls=query_polls, gcs_files=gcs_files)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def faults(self):
        return self.state.faults

    @property
    def engine(self):
        return self.state.engine

    @property
    def log(self) -> list[dict]:
        with self.state.lock:
            return [dict(e, statement=(self.state.jobs[e["job_id"]].kind if e.get("job_id") in self.state.jobs
                                       else e.get("statement"))) for e in self.state.log]

    def calls_per_statement(self) -> dict[str, dict[str, int]]:
        """``{statement kind: {route: count}}`` from the request log."""
        out: dict[str, dict[str, int]] = {}
        for e in self.log:
            kind = e.get("statement") or "other"
            out.setdefault(kind, {})
            out[kind][e["route"]] = out[kind].get(e["route"], 0) + 1
        return out

    def start(self) -> "FakeBigQuery":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FakeBigQuery":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["FakeBigQuery", "STATEMENT_TYPES"]
