"""DPO options of the systems users come from: a scalar score_margin per pair and per dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ..helpers import CONFIGS, read_jsonl, run_turbo

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


def test_max_prompt_and_target_length_cut_prompt_start_and_answer_end(fixture_models, tmp_path: Path) -> None:
    from turbo.data.pair_preferences import build_pair_samples
    from turbo.modeling.tokenizer import load_tokenizer
    from turbo.settings.loading import load_settings
    from turbo.settings.pipelines.train.dpo import DpoExperimentSettings

    full = load_settings(SCORE_MARGIN, DpoExperimentSettings)
    tokenizer = load_tokenizer(full.tokenizer_settings, full.model_settings, full.special_tokens_settings)
    whole, _ = build_pair_samples(full.train_dataset_settings, tokenizer, seed=full.seed)

    folder = tmp_path / "run"
    run_turbo(
        "train_dpo", "--experiment_settings_path", SCORE_MARGIN, "--set", f"log_path={folder}",
        "--set", "train_dataset_settings.max_prompt_length=6",
        "--set", "train_dataset_settings.max_target_length=4",
        "--set", f"data_debug_path={tmp_path / 'debug'}",
    )  # fmt: skip
    rows = {row["where"]: row for row in read_jsonl(tmp_path / "debug" / "train_samples.jsonl")}
    assert len(rows) == 4
    for sample in whole:
        row = rows[sample.record.where]
        start = 1 if sample.prompt_ids[0] == tokenizer.bos_token_id else 0
        assert row["prompt_ids"] == sample.prompt_ids[:start] + sample.prompt_ids[-(6 - start) :]
        assert row["chosen_ids"] == sample.chosen_ids[:4] and row["rejected_ids"] == sample.rejected_ids[:4]
        assert len(sample.prompt_ids) > 6 and len(sample.chosen_ids) > 4  # both were cut
    report = json.loads((folder / "data_report.json").read_text())["train"][0]
    assert report["truncated"] == 4
