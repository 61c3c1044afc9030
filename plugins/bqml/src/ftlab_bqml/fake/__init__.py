"""A local fake of the BigQuery REST API for ftlab's statements (see docs/backends/bqml.md)."""

from ftlab_bqml.fake.handler import FakeBigQuery
from ftlab_bqml.fake.server import Faults

__all__ = ["FakeBigQuery", "Faults"]
