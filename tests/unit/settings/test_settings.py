import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from turbo.errors import SettingsError
from turbo.settings.loading import apply_overrides, load_settings, validate_settings
from turbo.settings.pipelines.train.sft import SftExperimentSettings
from turbo.settings.trainer import TrainerSettings

from ...helpers import CONFIGS, REPO

SFT = CONFIGS / "train" / "sft" / "lora.json"


def sft_data() -> dict:
    return json.loads(SFT.read_text())


def messages(data: dict) -> str:
    with pytest.raises(SettingsError) as info:
        validate_settings(data, SftExperimentSettings, "x.json")
    return str(info.value)


def test_unknown_key_names_the_closest_valid_one() -> None:
    data = sft_data()
    data["trainer_settings"]["learning_rat"] = 1e-4
    data["model_settings"]["peft_settings"]["lora_alpah"] = 8
    text = messages(data)
    assert "trainer_settings.learning_rat: unknown field; did you mean 'learning_rate'?" in text
    assert "model_settings.peft_settings.lora_alpah: unknown field; did you mean 'lora_alpha'?" in text
    assert text.startswith("x.json: 2 problems")


def test_discriminated_union_reports_one_error_for_one_typo() -> None:
    data = sft_data()
    data["model_settings"]["peft_settings"]["r"] = "eight"
    with pytest.raises(ValidationError) as info:
        SftExperimentSettings.model_validate(data)
    assert info.value.error_count() == 1
    assert info.value.errors()[0]["loc"] == ("model_settings", "peft_settings", "LORA", "r")


def test_unknown_peft_name_lists_the_choices() -> None:
    data = sft_data()
    data["model_settings"]["peft_settings"]["name"] = "LORAX"
    text = messages(data)
    assert "LORA" in text and "PROMPT_TUNING" in text and "P_TUNING" in text


def test_both_num_samples_and_sample_rate_is_an_error() -> None:
    data = sft_data()
    data["train_dataset_settings"]["sources"][0]["num_samples"] = 3
    assert "set exactly one of num_samples or sample_rate" in messages(data)


def test_old_spellings_are_accepted() -> None:
    settings = load_settings(SFT, SftExperimentSettings)
    assert settings.trainer_settings.eval_strategy == "steps"  # written as evaluation_strategy
    assert settings.trainer_settings.use_cpu is True  # written as no_cuda
    data = sft_data()
    data["logging_settings"] = {"project_name": "alignment", "run_name": "sft", "entity": "turbo"}
    settings = SftExperimentSettings.model_validate(data)
    assert settings.logging_settings.logging_type == "wandb"
    assert settings.logging_settings.entity == "turbo"


def test_old_and_new_spelling_together_is_an_error() -> None:
    with pytest.raises(ValidationError, match="'no_cuda' is the old name of 'use_cpu'"):
        TrainerSettings(no_cuda=True, use_cpu=True)


def test_cross_field_rules() -> None:
    data = sft_data()
    data["trainer_settings"]["bf16"] = True
    data["trainer_settings"]["fp16"] = True
    assert "set only one of bf16 or fp16" in messages(data)
    data = sft_data()
    del data["val_dataset_settings"]
    assert "there is no val_dataset_settings" in messages(data)
    data = sft_data()
    data["train_dataset_settings"]["prompt_template"]["prefix_template"] = "<RS>{rol}"
    assert "must contain {role}" in messages(data)
    data = sft_data()
    data["seed"] = 1
    data["trainer_settings"]["seed"] = 2
    assert "disagree" in messages(data)


def test_settings_are_frozen_and_have_no_side_effects(tmp_path) -> None:
    data = sft_data()
    data["log_path"] = str(tmp_path / "run")
    settings = SftExperimentSettings.model_validate(data)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValidationError):
        settings.seed = 3  # type: ignore[misc]


def test_overrides_parse_json_values_and_walk_lists() -> None:
    data = apply_overrides(
        sft_data(),
        [
            "trainer_settings.learning_rate=1e-4",
            "train_dataset_settings.max_tokens_count=512",
            "train_dataset_settings.sources.0.name=renamed",
            "log_path=some/where",
            'model_settings.peft_settings={"name": "PROMPT_TUNING"}',
        ],
    )
    settings = SftExperimentSettings.model_validate(data)
    assert settings.trainer_settings.learning_rate == 1e-4
    assert settings.train_dataset_settings.max_tokens_count == 512
    assert settings.train_dataset_settings.sources[0].name == "renamed"
    assert str(settings.log_path) == "some/where"
    assert settings.model_settings.peft_settings.name == "PROMPT_TUNING"
    with pytest.raises(SettingsError, match="is not an item of the list"):
        apply_overrides(sft_data(), ["train_dataset_settings.sources.3.name=x"])
    with pytest.raises(SettingsError, match="expected KEY.PATH=VALUE"):
        apply_overrides(sft_data(), ["learning_rate"])


def test_validation_and_schema_import_no_torch() -> None:
    code = (
        "import sys\n"
        "from turbo.cli import main\n"
        "for args in (['validate', 'tests/fixtures/configs/train/sft/lora.json'], ['schema', 'train_sft']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), exc.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'peft') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_missing_inputs_are_found_also_in_optional_fields() -> None:
    from turbo.settings.paths import missing_input_paths
    from turbo.settings.pipelines.merge import MergeAdaptersSettings

    settings = MergeAdaptersSettings(
        model_settings={"model_path": "tests/fixtures/configs"},
        tokenizer_settings={"tokenizer_path": "no/such/tokenizer"},  # (owner/name reads as a hub id)
        adapter_path="no/such/adapter",
        save_path="out",
    )
    assert missing_input_paths(settings) == [
        "tokenizer_settings.tokenizer_path: no/such/tokenizer does not exist",
        "adapter_path: no/such/adapter does not exist",
    ]
