"""Generate the qa_records files: questions about short synthetic patient records (run once; committed).

    python data/qa_records/prepare.py

Every record is made up by this script (seeded): no real patient, no licence question (CC0, see
README.md). Each row asks one question about its record and lists every acceptable answer, as a
question-answering task does (``answers``: a JSON list; exact match and token F1 take the best).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 7
FIRST = ["Ana", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemal", "Lena"]
LAST = ["Lopez", "Okafor", "Smith", "Novak", "Haddad", "Kim", "Rossi", "Weber", "Silva", "Tanaka"]
MEDS = [("metformin", "500 mg"), ("lisinopril", "10 mg"), ("atorvastatin", "20 mg"), ("amoxicillin", "250 mg"),
        ("levothyroxine", "50 mcg"), ("omeprazole", "20 mg"), ("sertraline", "50 mg")]
ALLERGIES = ["penicillin", "peanuts", "latex", "sulfa drugs", "no known allergies"]
WORDS = {40: "forty", 41: "forty-one", 52: "fifty-two", 54: "fifty-four", 63: "sixty-three", 67: "sixty-seven",
         70: "seventy", 35: "thirty-five", 28: "twenty-eight", 81: "eighty-one"}


def record(rng: random.Random) -> tuple[str, list[tuple[str, list[str]]]]:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    age = rng.choice(sorted(WORDS))
    med, dose = rng.choice(MEDS)
    allergy = rng.choice(ALLERGIES)
    bp = f"{rng.randint(105, 160)}/{rng.randint(65, 98)}"
    text = (f"Patient: {name}. Age: {age}. Blood pressure: {bp} mmHg. Current medication: {med} {dose} daily. "
            f"Allergies: {allergy}.")
    qa = [("How old is the patient?", [str(age), f"{age} years", f"{age} years old", WORDS[age]]),
          ("Which medication does the patient take?", [f"{med} {dose}", med, f"{med} {dose} daily"]),
          ("What is the patient's blood pressure?", [bp, f"{bp} mmHg"]),
          ("What is the patient allergic to?",
           ["none", "no known allergies", "nothing"] if allergy.startswith("no ") else [allergy]),
          ("What is the patient's name?", [name, name.split()[1]])]
    return text, qa


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    for _ in range(160):
        text, qa = record(rng)
        q, answers = rng.choice(qa)
        rows.append({"input_text": f"{text}\nQuestion: {q}", "answers": answers})
    for name, part in (("train", rows[:120]), ("eval", rows[120:])):
        (HERE / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
        print(f"{name}: {len(part)} rows")


if __name__ == "__main__":
    main()
