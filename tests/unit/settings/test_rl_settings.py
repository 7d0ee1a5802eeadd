"""train_grpo / train_ppo settings: defaults from the issue, and the checks that stop a bad file early."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from turbo.settings.pipelines.train.grpo import GrpoExperimentSettings
from turbo.settings.pipelines.train.ppo import PpoExperimentSettings

from ...helpers import CONFIGS

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
        ({"trainer_settings": {"loss_type": "gspo"}}, "loss_type"),
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
        (
            {"trainer_settings": {"deepspeed": "zero3", "forward_batch_size": 2, "use_cpu": False}},
            "forward_batch_size: not with trainer_settings.deepspeed yet",
        ),
    ],
)
def test_grpo_settings_errors(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GrpoExperimentSettings.model_validate(with_changes(GRPO, **changes))


def test_ppo_value_model_trains_in_full() -> None:
    value = {"model_path": "x", "model_type": "seq_cls", "peft_settings": {"name": "LORA"}}
    with pytest.raises(ValidationError, match="value model trains in full"):
        PpoExperimentSettings.model_validate(with_changes(PPO, value_model_settings=value))


PROMPTS = {
    "dataset_type": "prompt",
    "sources": [
        {"name": "p", "records_path": "tests/fixtures/datasets/chat/train_chat.jsonl", "sample_rate": 1.0}
    ],
}


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({**PROMPTS, "raw": True, "prompt_template": {"role_tag_mapping": {}, "prefix_template": "{role}"}},
         "remove prompt_template"),
        ({**PROMPTS, "raw": True, "sources": [{**PROMPTS["sources"][0], "system_prompt": "Be brief."}]},
         "remove system_prompt"),
        ({**PROMPTS, "dataset_type": "prompts"}, "prompt"),
    ],
)  # fmt: skip
def test_prompt_datasets_refuse_what_they_cannot_do(dataset: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GrpoExperimentSettings.model_validate(with_changes(GRPO, train_dataset_settings=dataset))


def test_prompt_datasets_are_read_by_both_commands() -> None:
    for settings, base in ((GrpoExperimentSettings, GRPO), (PpoExperimentSettings, PPO)):
        parsed = settings.model_validate(
            with_changes(base, train_dataset_settings=PROMPTS, val_dataset_settings=PROMPTS)
        )
        assert parsed.train_dataset_settings.dataset_type == "prompt"
        assert parsed.val_dataset_settings.as_chat().dataset_type == "chat"


SERVER = {"vllm_server": {"url": "http://localhost:8000"}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rollout_settings": {**SERVER, "use_vllm": True}}, "set one of them"),
        ({"rollout_settings": SERVER, "model_settings": {"peft_settings": None}}, "train a LoRA adapter"),
        ({"rollout_settings": {"vllm_server": {"url": "localhost:8000"}}}, "http"),
    ],
)  # fmt: skip
def test_a_vllm_server_takes_a_lora_policy_and_a_url(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GrpoExperimentSettings.model_validate(with_changes(GRPO, **changes))
    assert GrpoExperimentSettings.model_validate(
        with_changes(GRPO, rollout_settings=SERVER)
    ).rollout_settings.vllm_server


def test_grpo_family_defaults_and_fields_left_out_of_the_training_arguments() -> None:
    family = {
        "loss_type": "cispo",
        "importance_sampling_level": "sequence",
        "advantage_estimator": "reinforce_pp",
        "dynamic_sampling": {},
        "mask_truncated_answers": True,
        "overlong_penalty": {"buffer": 4},
        "rollout_correction": {},
        "rollout_dump_steps": 0,
    }
    settings = GrpoExperimentSettings.model_validate(with_changes(GRPO, trainer_settings=family))
    trainer = settings.trainer_settings
    assert trainer.dynamic_sampling.max_rounds == 3
    assert (trainer.overlong_penalty.buffer, trainer.overlong_penalty.penalty) == (4, 1.0)
    correction = trainer.rollout_correction
    assert (correction.level, correction.mode, correction.cap) == ("token", "truncate", 2.0)
    assert not family.keys() & trainer.training_arguments().keys()
    defaults = type(trainer)()
    assert (defaults.loss_type, defaults.importance_sampling_level, defaults.advantage_estimator) == (
        "grpo",
        "token",
        "group",
    )
    assert defaults.rollout_correction is None and defaults.dynamic_sampling is None
    assert defaults.rollout_dump_steps is None and not defaults.mask_truncated_answers


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"advantage_estimator": "rloo", "scale_rewards": False}, "scale_rewards is read by .* group only"),
        ({"advantage_estimator": "reinforce_pp", "scale_rewards": True}, "std over the whole rollout"),
        ({"overlong_penalty": {"buffer": 8}}, "write a buffer below 8"),
        ({"rollout_correction": {"cap": 0.5}}, "cap"),
        ({"rollout_correction": {"mode": "clip"}}, "truncate"),
        ({"dynamic_sampling": {"max_rounds": 0}}, "max_rounds"),
        ({"rollout_dump_steps": -1}, "rollout_dump_steps"),
    ],
)
def test_grpo_family_refusals(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GrpoExperimentSettings.model_validate(with_changes(GRPO, trainer_settings=changes))


@pytest.mark.parametrize("name", ["loss_type", "importance_sampling_level", "advantage_estimator"])
def test_ppo_refuses_grpo_options_and_says_what_it_reads(name: str) -> None:
    values = {"loss_type": "cispo", "importance_sampling_level": "sequence", "advantage_estimator": "rloo"}
    value = values[name]
    with pytest.raises(ValidationError, match=f"{name} is a train_grpo setting.*cliprange"):
        PpoExperimentSettings.model_validate(with_changes(PPO, trainer_settings={name: value}))
    correction = {"level": "sequence", "mode": "mask"}
    corrected = with_changes(PPO, trainer_settings={"rollout_correction": correction})
    assert PpoExperimentSettings.model_validate(corrected).trainer_settings.rollout_correction.mode == "mask"
