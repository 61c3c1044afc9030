"""ftlab backend for BigQuery ML remote models (``backend=bqml``); see docs/backends/bqml.md.

Modules: ``plugin`` (entry point + config schema, stdlib only), ``sql`` (statement templates and
validation), ``jobs`` (client, retries, polling, job file), ``backend`` (the Backend), ``fake``
(a local BigQuery REST server for tests: ``python -m ftlab_bqml.fake --port N``).
"""
