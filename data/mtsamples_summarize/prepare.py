"""Build the mtsamples_summarize files from the MTSamples source table (run once; the output is committed).

    python data/mtsamples_summarize/prepare.py [--source PATH/mtsamples_minus_heldout.csv]

Task: summarise a transcript into its one-line ``description``. One row per distinct transcript
(the source files many transcripts under several specialties, with the same description; the 3
transcripts with two different descriptions keep the first). Seeded split into ``eval`` (200),
``dev`` (200, for choosing settings: never used by the shipped experiment's reported numbers) and
``train`` (the rest). No transcript of ``data/mtsamples17/eval.jsonl`` is in ``train`` or ``dev``,
so a model tuned here has not read the classification task's eval transcripts. Transcripts and
descriptions are unchanged (only surrounding whitespace trimmed); the 1,119-row held-out test
split of mtsamples17 is not in the source table at all.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SEED = 20261202
N_EVAL, N_DEV = 200, 200


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(ROOT.parent / "shared/data/mtsamples/mtsamples_minus_heldout.csv"))
    args = ap.parse_args()
    rows: dict[str, dict] = {}
    with open(args.source, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            text, desc = r["transcription"].strip(), r["description"].strip()
            if text and desc and text not in rows:
                rows[text] = {"input_text": text, "output_text": desc, "note_id": int(r["note_id"]),
                              "sample_name": r["sample_name"].strip()}
    m17_eval = {json.loads(line)["input_text"].strip()
                for line in (ROOT / "data/mtsamples17/eval.jsonl").read_text(encoding="utf-8").splitlines()}
    items = sorted(rows.values(), key=lambda r: r["note_id"])
    random.Random(SEED).shuffle(items)
    evals = items[:N_EVAL]
    rest = [r for r in items[N_EVAL:] if r["input_text"] not in m17_eval]
    dev, train = rest[:N_DEV], rest[N_DEV:]
    sums = {}
    for name, part in (("train", train), ("dev", dev), ("eval", evals)):
        path = HERE / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
        sums[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{name}: {len(part)} rows, sha256 {sums[name]}")
    left_out = len(items) - N_EVAL - len(rest)
    print(f"{len(items)} distinct transcripts; {left_out} left out of train/dev because mtsamples17's eval has them")


if __name__ == "__main__":
    main()
