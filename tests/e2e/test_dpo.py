"""train_dpo end to end through the CLI on the tiny llama: LoRA with the adapter-disabled reference,
a precomputed reference, reference-free losses, and full fine-tuning against a separate reference."""

import json
from pathlib import Path

import pytest

from ..helpers import (
    CONFIGS,
    DATASETS,
    assert_every_tensor_changed,
    assert_loss_falls,
    read_jsonl,
    run_turbo,
    train_rows,
)

LORA = CONFIGS / "train" / "dpo" / "lora.json"
FULL = CONFIGS / "train" / "dpo" / "full_with_ref_model.json"
PAIR_METRICS = [
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
    "logits/chosen",
    "logits/rejected",
]


def eval_rows(folder: Path) -> list[dict]:
    return train_rows(folder, "eval_loss")


def assert_reference_unchanged(folder: Path) -> None:
    """The same validation pairs get the same reference log-probs at every evaluation, while the
    policy's move."""
    evals = eval_rows(folder)
    assert len(evals) == 2
    for name in ("chosen", "rejected"):
        assert evals[0][f"eval_logps/ref_{name}"] == evals[1][f"eval_logps/ref_{name}"]
        assert evals[0][f"eval_logps/{name}"] != evals[1][f"eval_logps/{name}"]


@pytest.fixture(scope="module")
def lora_run(fixture_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dpo") / "lora"
    run_turbo("train_dpo", "--experiment_settings_path", LORA, "--set", f"log_path={folder}")
    return folder


def test_lora_sigmoid_trains_against_the_adapter_disabled_reference(lora_run: Path) -> None:
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json"):
        assert (lora_run / "final" / name).is_file(), name
    assert_loss_falls(lora_run, factor=0.75)
    rows = train_rows(lora_run)
    assert [row["step"] for row in rows] == list(range(1, 17))
    for row in rows:
        assert all(key in row for key in [*PAIR_METRICS, "logps/ref_chosen", "loss/sigmoid"]), row
    assert rows[-1]["rewards/margins"] > rows[0]["rewards/margins"]
    assert all(f"eval_{key}" in row for row in eval_rows(lora_run) for key in PAIR_METRICS)
    assert_reference_unchanged(lora_run)
    weights = assert_every_tensor_changed(
        lora_run / "checkpoints" / "checkpoint-8" / "adapter_model.safetensors",
        lora_run / "final" / "adapter_model.safetensors",
    )
    assert len([name for name in weights if "lora_B" in name]) == 2 * 4
    report = json.loads((lora_run / "data_report.json").read_text())
    assert report["train"][0]["used"] == 8 and report["train"][0]["truncated"] == 1
    assert "chosen: [[The capital of France is Paris.</s>" in (lora_run / "samples_preview.txt").read_text()


def test_precomputed_reference_gives_the_same_first_step(lora_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "precomputed"
    run_turbo(
        "train_dpo",
        "--experiment_settings_path",
        LORA,
        "--set",
        f"log_path={folder}",
        "--set",
        "trainer_settings.precompute_ref_log_probs=true",
        "--set",
        "trainer_settings.max_steps=1",
        "--set",
        "trainer_settings.eval_strategy=no",
    )
    online, precomputed = train_rows(lora_run)[0], train_rows(folder)[0]
    for key in ("loss/sigmoid", "logps/ref_chosen", "logps/ref_rejected", "rewards/margins"):
        # the same sums in another batch layout: equal up to float32 rounding of a ~50-token sum
        assert precomputed[key] == pytest.approx(online[key], abs=1e-6, rel=1e-7), key


@pytest.mark.parametrize(
    ("loss", "reference_free", "overrides"),
    [
        ({"loss_type": "ipo", "beta": 0.5}, False, []),
        ({"loss_type": "simpo", "beta": 2.0, "gamma": 0.5}, True, ["trainer_settings.learning_rate=0.03"]),
        # ORPO's loss is mostly the answers' NLL, which attention-only LoRA lowers slowly: full fine-tuning
        (
            {"loss_type": "orpo", "beta": 0.5},
            True,
            ["model_settings.peft_settings=null", "trainer_settings.learning_rate=0.003"],
        ),
    ],
    ids=lambda value: value["loss_type"] if isinstance(value, dict) else "",
)
def test_other_losses_train(
    fixture_models, tmp_path: Path, loss: dict, reference_free: bool, overrides: list[str]
) -> None:
    folder = tmp_path / loss["loss_type"]
    run_turbo(
        "train_dpo",
        "--experiment_settings_path",
        LORA,
        "--set",
        f"log_path={folder}",
        "--set",
        f"trainer_settings.loss_settings={json.dumps(loss)}",
        "--set",
        "trainer_settings.max_steps=12",
        "--set",
        "trainer_settings.save_steps=6",
        "--set",
        "trainer_settings.eval_strategy=no",
        *[arg for override in overrides for arg in ("--set", override)],
    )
    # SimPO's target margin (gamma) keeps its loss from falling as far in 12 steps
    assert_loss_falls(folder, factor=0.9 if loss["loss_type"] == "simpo" else 0.8)
    rows = train_rows(folder)
    assert all(f"loss/{loss['loss_type']}" in row and all(key in row for key in PAIR_METRICS) for row in rows)
    assert all(("logps/ref_chosen" in row) != reference_free for row in rows)
    name = (
        "model.safetensors"
        if overrides and "peft_settings=null" in overrides[0]
        else "adapter_model.safetensors"
    )
    assert_every_tensor_changed(folder / "checkpoints" / "checkpoint-6" / name, folder / "final" / name)


def test_full_fine_tuning_against_a_separate_reference_model(fixture_models, tmp_path: Path) -> None:
    folder = tmp_path / "full"
    run_turbo("train_dpo", "--experiment_settings_path", FULL, "--set", f"log_path={folder}")
    assert_loss_falls(folder, factor=0.8)
    assert all("loss/dpop/penalty" in row for row in train_rows(folder))
    assert_reference_unchanged(folder)
    assert_every_tensor_changed(
        folder / "checkpoints" / "checkpoint-6" / "model.safetensors", folder / "final" / "model.safetensors"
    )


def test_a_margin_loss_needs_margins_in_the_data(fixture_models, tmp_path: Path) -> None:
    records = read_jsonl(DATASETS / "pair_preferences" / "val_preferences.jsonl")
    path = tmp_path / "no_margins.jsonl"
    path.write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "precomputed_margin"}) + "\n" for r in records)
    )
    result = run_turbo(
        "train_dpo",
        "--experiment_settings_path",
        LORA,
        "--set",
        f"log_path={tmp_path / 'run'}",
        "--set",
        'trainer_settings.loss_settings={"loss_type": "sigmoid_with_margin"}',
        "--set",
        f"val_dataset_settings.sources.0.records_path={path}",
        expect=2,
    )
    assert f"{path}:1: the loss reads a margin, but this record has no precomputed_margin" in result.stderr
    assert "4 of 4 sampled records in val_pairs have none" in result.stderr
    assert not (tmp_path / "run" / "final").exists()
