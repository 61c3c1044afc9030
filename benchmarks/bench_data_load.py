"""Load time of a 100k-row split in each data format, against JSONL measured in the same run.

One synthetic data set (seeded: 100,000 rows, ~200-character texts, 12 labels, one id column) is
written as JSONL, CSV, TSV and Parquet, and put in a BigQuery table on the fake server of the
BigQuery plugin (``ftlab_bqml.fake``, 127.0.0.1; its REST round trips and JSON cells are part of the
time, as a real service's would be). Each is loaded with ``ftlab.data.load_data`` exactly as a run
does (every row checked, ``data.labels=auto``, ``data.id_column``), median of 3 loads (the first one
counts: no warm-up beyond the OS file cache). Prints seconds, rows/s and the ratio to JSONL.

    python benchmarks/bench_data_load.py [--quick]      # --quick: 10,000 rows, 1 load each
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = [f"w{i:04d}" for i in range(5000)]
LABELS = [f"label_{c}" for c in "abcdefghijkl"]


def rows(n: int) -> list[dict]:
    rng = random.Random(21)
    return [{"id": f"r{i}", "text": " ".join(rng.choices(WORDS, k=36)), "label": rng.choice(LABELS)}
            for i in range(n)]


def write_all(folder: Path, data: list[dict]) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = {f: folder / f"data.{f}" for f in ("jsonl", "csv", "tsv", "parquet")}
    out["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        with out[fmt].open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(data[0]), delimiter=sep)
            w.writeheader()
            w.writerows(data)
    pq.write_table(pa.Table.from_pylist(data), out["parquet"])
    return out


def timed(cfg, repeats: int) -> tuple[float, int]:
    from ftlab.data import load_data

    times, n = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = len(load_data(cfg, [], need_train=True).splits["train"].examples)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10,000 rows, one load per format")
    ns = p.parse_args()
    n, repeats = (10_000, 1) if ns.quick else (100_000, 3)
    import logging

    logging.getLogger("ftlab").setLevel(logging.WARNING)  # labels=auto prints its table once per load
    from ftlab.config.data import BigQuerySourceConfig, DataConfig

    data = rows(n)
    keys = dict(text_column="text", label_column="label", id_column="id", labels="auto")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = write_all(Path(tmp), data)
        for fmt, path in files.items():
            results[fmt], got = timed(DataConfig(train_path=str(path), **keys), repeats)
            assert got == n, (fmt, got)
            print(f"{fmt:8s} {path.stat().st_size / 2**20:6.1f} MiB  {results[fmt]:6.2f} s  "
                  f"{n / results[fmt]:9.0f} rows/s", flush=True)
    try:
        from ftlab_bqml.fake import FakeBigQuery
        from ftlab_bqml.fake.engine import Table
    except ImportError:
        print("bigquery: skipped (the BigQuery plugin's fake server is not installed: pip install -e plugins/bqml)")
    else:
        with FakeBigQuery() as fake:
            fake.engine.tables["bench-project.ds.data"] = Table([("id", "STRING"), ("text", "STRING"),
                                                                 ("label", "STRING")], data)
            bq = BigQuerySourceConfig(api_endpoint=fake.url, location="US")
            results["bigquery"], got = timed(DataConfig(train_table="bench-project.ds.data", bigquery=bq, **keys),
                                             repeats)
            assert got == n, ("bigquery", got)
            print(f"bigquery (fake server, {bq.page_size} rows a page)  {results['bigquery']:6.2f} s  "
                  f"{n / results['bigquery']:9.0f} rows/s", flush=True)
    size = "100k" if n == 100_000 else f"{n // 1000}k"
    for fmt, s in results.items():
        print(f"RESULT load_{fmt}_{size}_s {s:.3f} s")
    for fmt, s in results.items():
        if fmt != "jsonl":
            print(f"{fmt} vs jsonl: {s:.2f} s vs {results['jsonl']:.2f} s ({s / results['jsonl']:.2f}x the time)")
            print(f"RESULT load_{fmt}_vs_jsonl {s / results['jsonl']:.2f} ratio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
