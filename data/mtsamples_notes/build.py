"""Build notes.csv (docs/own_data.md's example) from the MTSamples source table.

    python data/mtsamples_notes/build.py mtsamples_minus_heldout.csv data/mtsamples_notes/notes.csv

Keeps the rows of six specialties that are not among the default task's 17 labels, with the
one-sentence ``description`` as the text (not the transcript), and cleans them as a user would:
no empty description, each description once, and no description filed under two of the six
specialties (34 such). Rows are shuffled with a fixed seed, so the file's first N rows are a fair sample.
"""

from __future__ import annotations

import csv
import random
import sys
from collections import defaultdict

SPECIALTIES = ("Gastroenterology", "Neurology", "Obstetrics / Gynecology", "Ophthalmology", "Orthopedic",
               "Urology")
SEED = 21


def build(rows: list[dict]) -> list[list[str]]:
    """``[[note_id, description, specialty], ...]`` from source rows (dicts of the source's columns)."""
    labels: dict[str, set] = defaultdict(set)
    first: dict[str, list[str]] = {}
    for row in rows:
        text = " ".join(row["description"].split())
        if row["medical_specialty"] not in SPECIALTIES or not text:
            continue
        labels[text].add(row["medical_specialty"])
        first.setdefault(text, [row["note_id"], text, row["medical_specialty"]])
    out = [first[t] for t in first if len(labels[t]) == 1]
    random.Random(SEED).shuffle(out)
    return out


def main(argv: list[str]) -> int:
    src, dst = argv
    with open(src, newline="", encoding="utf-8") as fh:
        out = build(list(csv.DictReader(fh)))
    with open(dst, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["note_id", "description", "specialty"])
        w.writerows(out)
    print(f"{dst}: {len(out)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
