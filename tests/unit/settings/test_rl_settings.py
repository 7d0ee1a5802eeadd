"""train_grpo / train_ppo settings: defaults from the issue, and the checks that stop a bad file early."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from turbo.settings.pipelines.train.grpo import GrpoExperimentSettings
from turbo.settings.pipelines.train.ppo import PpoExperimentSettings

from ...conftest import CONFIGS

GRPO = json.loads((CONFIGS / "train" / "grpo" / "lora.json").read_text())
PPO = json.loads((CONFIGS / "train" / "ppo" / "lora.json").read_text())


def with_changes(base: dict, **changes: dict) -> dict:
    settings = json.loads(json.dumps(base))
    for block, values in changes.items():
        if isinstance(values, dict) and isinstance(settings.get(block), dict):
            settings[block].update(values)
        else:
            settings[block] = values
    return settings


def test_ppo_defaults_follow_the_issue() -> None:
    trainer = PpoExperimentSettings.model_validate(PPO).trainer_settings
    defaults = type(trainer)()
    assert (defaults.kl_coef, defaults.cliprange, defaults.vf_coef, defaults.cliprange_value) == (
        0.1,
        0.2,
        0.5,
        0.2,
    )
    assert (defaults.gamma, defaults.lam, defaults.num_ppo_epochs) == (1.0, 0.95, 4)
    arguments = trainer.training_arguments()
    assert arguments["per_device_train_batch_size"] == trainer.rollout_batch_size
    assert "kl_coef" not in arguments and "num_ppo_epochs" not in arguments


def test_grpo_training_arguments_leave_out_the_grpo_fields() -> None:
    arguments = GrpoExperimentSettings.model_validate(GRPO).trainer_settings.training_arguments()
    assert arguments["per_device_train_batch_size"] == 4
    assert not {"num_generations", "beta", "loss_type", "epsilon", "forward_batch_size"} & arguments.keys()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trainer_settings": {"per_device_train_batch_size": 2}}, "rollout_batch_size"),
        ({"trainer_settings": {"gradient_accumulation_steps": 2}}, "gradient_accumulation_steps must be 1"),
        ({"trainer_settings": {"num_mini_batches": 3}}, "must divide the answers of one rollout"),
        ({"trainer_settings": {"loss_type": "bnpo"}}, "loss_type"),
        ({"trainer_settings": {"num_generations": 1}}, "num_generations"),
        ({"reward_settings": []}, "at least one reward"),
        (
            {"reward_settings": [{"type": "regex", "pattern": "a"}, {"type": "regex", "pattern": "b"}]},
            "distinct",
        ),
        ({"trainer_settings": {"beta": 0.0}, "ref_model_settings": {"model_path": "x"}}, "beta: 0"),
        ({"rollout_settings": {"vllm_engine_settings": {}}}, "use_vllm: true only"),
        (
            {
                "rollout_settings": {"use_vllm": True},
                "model_settings": {"peft_settings": {"name": "PROMPT_TUNING"}},
            },
            "LoRA or full weights",
        ),
        ({"trainer_settings": {"eval_strategy": "steps", "eval_steps": 2}}, "val_dataset_settings"),
    ],
)
def test_grpo_settings_errors(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GrpoExperimentSettings.model_validate(with_changes(GRPO, **changes))


def test_ppo_value_model_trains_in_full() -> None:
    value = {"model_path": "x", "model_type": "seq_cls", "peft_settings": {"name": "LORA"}}
    with pytest.raises(ValidationError, match="value model trains in full"):
        PpoExperimentSettings.model_validate(with_changes(PPO, value_model_settings=value))
