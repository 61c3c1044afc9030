"""``python -m ftlab_bqml.fake --port N``: serve the fake BigQuery on 127.0.0.1 until interrupted."""

from __future__ import annotations

import argparse

from ftlab_bqml.fake import FakeBigQuery


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ftlab_bqml.fake", description=__doc__)
    ap.add_argument("--port", type=int, default=9050, help="port on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--tune-polls", type=int, default=3, help="polls before a tuning job is DONE")
    ap.add_argument("--query-polls", type=int, default=1, help="polls before a query job is DONE")
    ap.add_argument("--gcs", action="append", default=[], metavar="gs://b/p=LOCAL_FILE",
                    help="serve LOAD DATA from this gs:// URI out of a local NDJSON file (repeatable)")
    args = ap.parse_args(argv)
    gcs = dict(item.split("=", 1) for item in args.gcs)
    fake = FakeBigQuery(port=args.port, tune_polls=args.tune_polls, query_polls=args.query_polls, gcs_files=gcs)
    print(f"fake BigQuery listening on {fake.url}", flush=True)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.httpd.server_close()


if __name__ == "__main__":
    main()
