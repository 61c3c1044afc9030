"""A split read from a BigQuery table (``data.train_table=project.dataset.table``) for any backend.

Read with google-cloud-bigquery (``pip install 'ftlab[bigquery-data]'``), imported only here and only
when a ``*_table`` key is set: ``tables.get`` for the schema (a missing column fails once, naming
it), then ``tabledata.list`` over the required columns only, ``data.bigquery.page_size`` rows a page
(no query job, so nothing is billed as bytes processed). Rows go through the same checks as a file's;
errors name ``project.dataset.table:row N`` (1-based, in the table's listing order). The split's
sha256 covers the rows read (a table has no file bytes to hash).
"""

from __future__ import annotations

import hashlib
import json
from ftlab.config.data import BigQuerySourceConfig
from ftlab.data.rows import DataError, RawRow, missing_columns_error

INSTALL = "pip install 'ftlab[bigquery-data]' (google-cloud-bigquery)"


def _client(bq: BigQuerySourceConfig, table_id: str, key: str):
    from google.cloud import bigquery

    project = bq.project or table_id.rsplit(".", 2)[0]
    creds, options = None, None
    if bq.api_endpoint:
        from google.api_core.client_options import ClientOptions

        options = ClientOptions(api_endpoint=bq.api_endpoint)
        if bq.api_endpoint.startswith("http://"):  # a local fake or emulator: no Google account
            from google.auth.credentials import AnonymousCredentials

            creds = AnonymousCredentials()
    try:
        return bigquery.Client(project=project, credentials=creds, location=bq.location,
                               client_options=options)
    except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError, and the like
        raise DataError(f"{key}={table_id}: cannot create a BigQuery client ({type(exc).__name__}: {exc}); "
                        f"sign in with `gcloud auth application-default login`, or point "
                        f"data.bigquery.api_endpoint at a local server") from None


def read_table(table_id: str, bq: BigQuerySourceConfig, columns: dict[str, str],
               key: str) -> tuple[str, list[RawRow]]:
    """``(sha256 of the rows read, the rows)``; ``columns``: required column → config key."""
    try:
        from google.api_core import exceptions as api
    except ImportError:
        raise DataError(f"{key}={table_id}: reading a BigQuery table needs google-cloud-bigquery: "
                        f"{INSTALL}") from None
    client = _client(bq, table_id, key)
    try:
        try:
            table = client.get_table(table_id)
        except api.NotFound as exc:
            raise DataError(f"{key}: table {table_id} not found ({exc.message})") from None
        err = missing_columns_error(key, table_id, columns, [f.name for f in table.schema])
        if err is not None:
            raise err
        fields = [f for f in table.schema if f.name in columns]
        names = [f.name for f in fields]
        digest = hashlib.sha256()
        out = []
        listing = client.list_rows(table, selected_fields=fields, page_size=bq.page_size)
        for i, row in enumerate(listing):
            cells = list(row.values())
            digest.update(json.dumps(cells, ensure_ascii=False, default=str).encode() + b"\n")
            out.append(RawRow(i, i + 1, f"{table_id}:row {i + 1}", "", dict(zip(names, cells))))
        return digest.hexdigest(), out
    except api.GoogleAPICallError as exc:
        raise DataError(f"{key}: cannot read {table_id}: {exc}") from None
    finally:
        client.close()
