"""Build the mtsamples_title files: write a transcript's title (its ``sample_name``) (run once; committed).

    python data/mtsamples_title/prepare.py [--source PATH/mtsamples_minus_heldout.csv]

A small text-generation example on MTSamples (CC0, see ../mtsamples17/README.md): the input is a
transcript, the reference its sample name (e.g. "Laparoscopic Gastric Bypass"). One row per distinct
transcript, seeded 240 train / 80 eval rows, none of data/mtsamples17's eval transcripts in train.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(ROOT.parent / "shared/data/mtsamples/mtsamples_minus_heldout.csv"))
    args = ap.parse_args()
    rows: dict[str, dict] = {}
    with open(args.source, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            text, title = r["transcription"].strip(), r["sample_name"].strip()
            if text and title and text not in rows:
                rows[text] = {"input_text": text, "output_text": title, "note_id": int(r["note_id"])}
    m17_eval = {json.loads(x)["input_text"].strip()
                for x in (ROOT / "data/mtsamples17/eval.jsonl").read_text(encoding="utf-8").splitlines()}
    items = sorted(rows.values(), key=lambda r: r["note_id"])
    random.Random(11).shuffle(items)
    evals = items[:80]
    train = [r for r in items[80:] if r["input_text"] not in m17_eval][:240]
    for name, part in (("train", train), ("eval", evals)):
        (HERE / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part),
                                            encoding="utf-8")
        print(f"{name}: {len(part)} rows")


if __name__ == "__main__":
    main()
