"""Settings of issue 6: DeepSpeed presets and shared values, bitsandbytes loading, packing."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from turbo.errors import SettingsError
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.deepspeed import PRESETS, load_config, resolve
from turbo.settings.loading import validate_settings
from turbo.settings.model import BnbSettings
from turbo.settings.pipelines.train.sft import SftExperimentSettings
from turbo.settings.trainer import TrainerSettings

from ...helpers import CONFIGS

SFT = CONFIGS / "train" / "sft" / "lora.json"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_loads_and_leaves_shared_values_to_turbo(preset: str) -> None:
    settings = TrainerSettings(deepspeed=preset, per_device_train_batch_size=3, max_grad_norm=0.5)
    config = settings.training_arguments()["deepspeed"]
    assert config["zero_optimization"]["stage"] == int(preset[4])
    assert config["train_micro_batch_size_per_gpu"] == "auto" and config["gradient_clipping"] == "auto"
    assert config["fp16"]["enabled"] == "auto" and config["bf16"]["enabled"] == "auto"
    if config["zero_optimization"]["stage"] == 3:
        assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_a_deepspeed_file_that_disagrees_with_trainer_settings_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"train_micro_batch_size_per_gpu": 8, "bf16": {"enabled": True}}))
    with pytest.raises(ValidationError) as info:
        TrainerSettings(deepspeed=str(path), per_device_train_batch_size=4)
    message = str(info.value)
    assert "train_micro_batch_size_per_gpu=8" in message and "per_device_train_batch_size is 4" in message
    assert "bf16.enabled=True" in message
    # the same values written as turbo's are fine, and handed on as "auto"
    settings = TrainerSettings(deepspeed=str(path), per_device_train_batch_size=8, bf16=True)
    assert settings.training_arguments()["deepspeed"]["train_micro_batch_size_per_gpu"] == "auto"


def test_deepspeed_names_the_presets_when_neither_preset_nor_file() -> None:
    with pytest.raises(ValidationError, match="zero2_offload"):
        TrainerSettings(deepspeed="zero4")
    with pytest.raises(ValidationError, match="empty model or adapter"):
        TrainerSettings(
            deepspeed={"zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": False}}
        )
    assert load_config({"a": 1}) == {"a": 1} and "train_batch_size" in resolve({"a": 1})


def test_bnb_settings_need_one_width_and_an_adapter_to_train() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        BnbSettings(load_in_4bit=True, load_in_8bit=True)
    with pytest.raises(ValidationError, match="load_in_4bit only"):
        BnbSettings(load_in_8bit=True, bnb_4bit_quant_type="fp4")
    data = json.loads(SFT.read_text())
    data["log_path"] = "x"
    data["model_settings"]["bnb_settings"] = {"load_in_4bit": True}
    validate_settings(data, SftExperimentSettings, "x.json")
    data["model_settings"]["peft_settings"] = None
    with pytest.raises(SettingsError, match="train an adapter on top"):
        validate_settings(data, SftExperimentSettings, "x.json")


def test_packing_needs_max_tokens_count() -> None:
    source = {"name": "s", "records_path": "x.jsonl", "sample_rate": 1.0}
    with pytest.raises(ValidationError, match="set max_tokens_count"):
        ChatDatasetSettings(dataset_type="chat", sources=[source], pack_to_max_length=True)


def test_packing_rejects_prompt_learning_adapters() -> None:
    data = json.loads(SFT.read_text())
    data["log_path"] = "x"
    data["train_dataset_settings"]["pack_to_max_length"] = True
    validate_settings(data, SftExperimentSettings, "x.json")
    data["model_settings"]["peft_settings"] = {"name": "PREFIX_TUNING", "num_virtual_tokens": 4}
    with pytest.raises(SettingsError, match="use LORA or turn packing off"):
        validate_settings(data, SftExperimentSettings, "x.json")


def test_the_fsdp2_preset_is_fsdp2_through_transformers_with_the_users_fsdp_config_on_top() -> None:
    kwargs = TrainerSettings(fsdp="fsdp2", fsdp_config={"cpu_offload": True}).training_arguments()
    assert kwargs["fsdp"] is True
    assert kwargs["fsdp_config"] == {"version": 2, "reshard_after_forward": True, "cpu_offload": True}
    with pytest.raises(ValidationError, match="fsdp_config.fsdp_version: the preset fsdp 'fsdp2' is FSDP2"):
        TrainerSettings(fsdp="fsdp2", fsdp_config={"fsdp_version": 1})
    assert TrainerSettings(fsdp="full_shard auto_wrap").training_arguments()["fsdp"] == "full_shard auto_wrap"


@pytest.mark.parametrize("backend", [{"deepspeed": "zero3"}, {"fsdp": "fsdp2"}])
def test_rl_commands_take_deepspeed_and_fsdp(backend: dict) -> None:
    from turbo.settings.pipelines.train.grpo import GrpoExperimentSettings
    from turbo.settings.pipelines.train.ppo import PpoExperimentSettings

    for command, settings in ((GrpoExperimentSettings, "grpo"), (PpoExperimentSettings, "ppo")):
        data = json.loads((CONFIGS / "train" / settings / "lora.json").read_text())
        data["trainer_settings"] |= {**backend, "use_cpu": False}
        trainer = command.model_validate(data).trainer_settings
        assert trainer.training_arguments().keys() >= {next(iter(backend))}
