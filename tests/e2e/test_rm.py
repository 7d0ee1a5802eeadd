"""train_rm end to end through the CLI on the tiny reward model, then inference_rm on its output."""

import json
from pathlib import Path

import pytest

from ..helpers import CONFIGS, assert_every_tensor_changed, assert_loss_falls, read_jsonl, run_turbo

RM = CONFIGS / "train" / "rm" / "full.json"
INFERENCE = CONFIGS / "inference" / "rm" / "pairs.json"


@pytest.fixture(scope="module")
def rm_run(fixture_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rm") / "full"
    run_turbo("train_rm", "--experiment_settings_path", RM, "--set", f"log_path={folder}")
    return folder


def test_reward_model_trains(rm_run: Path) -> None:
    assert_loss_falls(rm_run, factor=0.6)
    rows = read_jsonl(rm_run / "metrics.jsonl")
    train = [row for row in rows if "loss" in row]
    keys = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
    assert all(key in row for row in train for key in keys)
    assert [row["step"] for row in rows if "eval_rewards/accuracies" in row] == [8, 16]
    config = json.loads((rm_run / "final" / "config.json").read_text())
    assert config["num_labels"] == 1 if "num_labels" in config else len(config["id2label"]) == 1
    assert_every_tensor_changed(
        rm_run / "checkpoints" / "checkpoint-8" / "model.safetensors", rm_run / "final" / "model.safetensors"
    )


def test_inference_rm_scores_every_pair_with_the_trained_model(rm_run: Path, tmp_path: Path) -> None:
    run_turbo(
        "inference_rm",
        "--inference_settings_path",
        INFERENCE,
        "--set",
        f"save_path={tmp_path / 'scores'}",
        "--set",
        f"inference_settings.0.model_settings.model_path={rm_run / 'final'}",
    )
    train = read_jsonl(tmp_path / "scores" / "model_0" / "train_pairs.jsonl")
    val = read_jsonl(tmp_path / "scores" / "model_0" / "val_pairs.jsonl")
    assert len(train) == 8 and len(val) == 4
    assert all(set(row["rewards"]) == {"answer_w", "answer_l"} for row in train + val)
    assert all(isinstance(value, float) for row in train for value in row["rewards"].values())
    assert [row["id"] for row in train] == [f"train-{i}" for i in range(8)]
    # the model fitted its training pairs: the chosen answer scores higher in most of them
    assert sum(row["rewards"]["answer_w"] > row["rewards"]["answer_l"] for row in train) >= 6


def test_inference_rm_scores_every_answer_of_sampling_records(rm_run: Path, tmp_path: Path) -> None:
    settings = json.loads(INFERENCE.read_text())
    settings["dataset_settings"] = {
        "dataset_type": "sampling",
        "sources": [
            {
                "name": "answers",
                "records_path": "tests/fixtures/datasets/sampling/inference_answers.jsonl",
                "sample_rate": 1.0,
            }
        ],
    }
    settings["inference_settings"][0]["model_settings"]["model_path"] = str(rm_run / "final")
    settings["save_path"] = str(tmp_path / "scores")
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    run_turbo("inference_rm", "--inference_settings_path", path)
    records = read_jsonl(Path("tests/fixtures/datasets/sampling/inference_answers.jsonl"))
    rows = read_jsonl(tmp_path / "scores" / "model_0" / "answers.jsonl")
    assert len(rows) == len([r for r in records if r["answers"]])
    for row in rows:
        assert set(row["rewards"]) == {answer["id"] for answer in row["answers"]}
