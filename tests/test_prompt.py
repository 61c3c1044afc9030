"""The answer parser on realistic generations, and prompt rendering."""

from __future__ import annotations

import pytest

from ftlab.contract import UNPARSEABLE
from ftlab.prompt import Prompt, normalise, parse_answer

LABELS = ["Allergy / Immunology", "Autopsy", "Bariatrics", "Cardiovascular / Pulmonary", "Chiropractic",
          "Consult - History and Phy.", "Cosmetic / Plastic Surgery", "Dentistry", "Dermatology",
          "Diets and Nutritions", "Discharge Summary", "Emergency Room Reports", "Endocrinology",
          "ENT - Otolaryngology", "Gastroenterology", "General Medicine", "Hematology - Oncology"]

CASES = [
    ("Dentistry", "Dentistry"),
    ("dentistry.", "Dentistry"),
    ("  DENTISTRY  ", "Dentistry"),
    ("Answer: Dentistry", "Dentistry"),
    ("answer - dentistry", "Dentistry"),
    ("The specialty is Cardiovascular/Pulmonary", "Cardiovascular / Pulmonary"),
    ("Cardiovascular  /  Pulmonary", "Cardiovascular / Pulmonary"),
    ("Specialty: Consult - History and Phy.", "Consult - History and Phy."),
    ("Consult-History and Phy", "Consult - History and Phy."),
    ("ENT", "ENT - Otolaryngology"),
    ("Otolaryngology", "ENT - Otolaryngology"),
    ("B. Dentistry", "Dentistry"),
    ("(c) Autopsy", "Autopsy"),
    ('"Gastroenterology"', "Gastroenterology"),
    ("**General Medicine**", "General Medicine"),
    ("Hematology", "Hematology - Oncology"),
    ("Discharge Summary\nThe patient was discharged home.", "Discharge Summary"),
    ("Cardio", "Cardiovascular / Pulmonary"),  # truncated generation, unique prefix
    ("Gastroenterology and General Medicine", UNPARSEABLE),  # two labels: ambiguous
    ("Dentistry, Dermatology", UNPARSEABLE),
    ("Pulmonary or Dermatology", UNPARSEABLE),
    ("I am not sure.", UNPARSEABLE),
    ("", UNPARSEABLE),
    ("   ", UNPARSEABLE),
    ("Neurology", UNPARSEABLE),  # not in the label set
    ("Der", UNPARSEABLE),  # prefix too short
    ("D", UNPARSEABLE),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_parse_answer(text, expected):
    assert parse_answer(text, LABELS) == expected


def test_normalise_spaces_around_separators():
    assert normalise(" Allergy/ Immunology. ") == normalise("allergy / immunology") == "allergy/immunology"


def test_every_label_parses_to_itself():
    assert [parse_answer(lab, LABELS) for lab in LABELS] == LABELS


def test_render_fills_labels_and_text_and_truncates_chars():
    p = Prompt(template="Pick:\n{labels}\nText: {text}", labels=("A b", "C"), max_input_chars=5)
    assert p.render("0123456789") == "Pick:\n- A b\n- C\nText: 01234"
    left = Prompt(template="{labels}|{text}", labels=("A",), max_input_chars=3, truncation_side="left")
    assert left.render("abcdef") == "- A|def"


def test_prompt_hash_changes_with_template_and_labels():
    a = Prompt(template="{labels} {text}", labels=("A", "B"))
    assert a.sha256 != Prompt(template="{labels}  {text}", labels=("A", "B")).sha256
    assert a.sha256 != Prompt(template="{labels} {text}", labels=("B", "A")).sha256
