"""DPO options of the systems users come from: a scalar score_margin per pair and per dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ..conftest import CONFIGS, read_jsonl, run_turbo

SCORE_MARGIN = CONFIGS / "train" / "dpo" / "score_margin.json"


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_score_margin_per_pair_and_per_dataset_in_the_loss(fixture_models, tmp_path: Path) -> None:
    """At step 1 the LoRA policy equals its reference (lora_B = 0), so each pair's loss is
    -log sigmoid(0 - m) = softplus(m): m = 1 for the two pairs with their own score_margin, and the
    dataset's score_margin 2 for the two without."""
    run_turbo(
        "train_dpo", "--experiment_settings_path", SCORE_MARGIN, "--set", f"log_path={tmp_path / 'run'}"
    )
    first = next(row for row in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in row)
    assert first["step"] == 1
    assert first["loss"] == pytest.approx((softplus(1.0) + softplus(2.0)) / 2, abs=1e-4)


def test_a_dataset_score_margin_with_a_loss_that_reads_none_is_refused(tmp_path: Path) -> None:
    data = json.loads(SCORE_MARGIN.read_text())
    data["trainer_settings"]["loss_settings"] = {"loss_type": "sigmoid", "beta": 0.5}
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    result = run_turbo("validate", path, "--command", "train_dpo", expect=2)
    assert "train_dataset_settings.score_margin: loss_type 'sigmoid' reads no margin" in result.stderr
