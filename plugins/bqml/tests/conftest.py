"""Fixtures for the bqml plugin: the fake BigQuery server, a real client on it, a backend factory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent))  # bq_dialect, test_bqml_sql (unique names); append: never shadow

from ftlab.contract import RunContext
from ftlab_bqml.testing import PROJECT, fast_backend_cfg, make_run_cfg


@pytest.fixture
def fake_bq():
    """A started :class:`FakeBigQuery` on a free 127.0.0.1 port (stopped after the test)."""
    from ftlab_bqml.fake import FakeBigQuery

    with FakeBigQuery(tune_polls=3) as fake:
        yield fake


@pytest.fixture
def bq_client(fake_bq):
    """The real ``google.cloud.bigquery.Client`` talking to the fake."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(), location="US",
                           client_options={"api_endpoint": fake_bq.url})


@pytest.fixture
def make_backend(fake_bq, tmp_path):
    """``make_backend(**backend_overrides) -> (backend, tags)``; tags collects ``ctx.set_tags``;
    ``groups={"eval": EvalConfig(...), ...}`` sets other config groups of the run."""
    from ftlab_bqml.backend import BqmlBackend

    def build(out=None, groups=None, **kw):
        tags: dict = {}
        ctx = RunContext(run_dir=tmp_path, set_tags=lambda t: tags.update(t))
        kwargs = {"out": out} if out is not None else {}
        run_cfg = make_run_cfg(fast_backend_cfg(fake_bq.url, **kw), **(groups or {}))
        return BqmlBackend(run_cfg, ctx, **kwargs), tags

    return build


