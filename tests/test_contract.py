"""The contract's (de)serialisers: one writer and one reader each, inverse of each other."""

from __future__ import annotations

import json

from ftlab.contract import Prediction


def test_prediction_row_round_trip_through_json():
    p = Prediction(id="eval-3", raw_text=" Neurology\n", label="Neurology", scores={"Neurology": -0.5, "Urology": -2.0},
                   status="", latency_s=0.25, prompt_tokens=211, output_tokens=3)
    row = json.loads(json.dumps(p.to_json()))
    assert Prediction.from_json(row) == p
    # a predictions.jsonl row carries more (truth, correct …); the reader takes its own fields only
    assert Prediction.from_json({**row, "truth": "Urology", "correct": False}) == p


def test_prediction_row_defaults_for_absent_fields():
    p = Prediction.from_json({"id": "x", "raw_text": "?", "scores": None, "status": None})
    assert p == Prediction(id="x", raw_text="?")


def test_plain_config_strips_the_hydra_node_from_yaml_dict_and_dictconfig():
    from omegaconf import OmegaConf

    from ftlab.config.compose import plain_config

    text = "experiment: e\nseed: ${x}\nx: 3\nhydra:\n  run:\n    dir: out\n"
    assert plain_config(text) == {"experiment": "e", "seed": 3, "x": 3}
    assert plain_config(text, resolve=False)["seed"] == "${x}"
    assert plain_config(OmegaConf.create(text)) == plain_config({"experiment": "e", "seed": 3, "x": 3,
                                                                  "hydra": {}})
