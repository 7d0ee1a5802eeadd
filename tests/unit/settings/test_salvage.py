"""salvage: the settings with every value that failed taken out, so the preflight checks the rest."""

import json

import pytest
from pydantic import ValidationError

from turbo.settings.pipelines.train.sft import SftExperimentSettings
from turbo.settings.problems import salvage, unsettled

from ...helpers import CONFIGS

SFT = json.loads((CONFIGS / "train" / "sft" / "lora.json").read_text())


def failed(data: dict) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        SftExperimentSettings.model_validate(data)
    return info.value


def test_bad_values_and_unknown_keys_are_taken_out_and_defaults_stand_in() -> None:
    data = json.loads(json.dumps(SFT))
    data["trainer_settings"]["num_train_epochs"] = -1
    data["trainer_settings"]["learning_rat"] = 0.1
    data["train_dataset_settings"]["sources"][0]["num_samples"] = -3
    settings, removed = salvage(SftExperimentSettings, data, failed(data))
    assert settings is not None
    assert sorted(removed) == [
        "train_dataset_settings.sources.0.num_samples",
        "trainer_settings.learning_rat",
        "trainer_settings.num_train_epochs",
    ]
    assert settings.trainer_settings.num_train_epochs == type(settings.trainer_settings)().num_train_epochs
    assert settings.log_path == type(settings.log_path)(SFT["log_path"])  # what validated is kept
    assert data["trainer_settings"]["num_train_epochs"] == -1  # the input is not changed
    assert unsettled("trainer_settings.num_train_epochs: x", removed)
    assert not unsettled("log_path: x", removed)


def test_a_missing_key_in_a_list_item_takes_the_list() -> None:
    """Removing one item would shift the others' indices, and the preflight names fields by index."""
    data = json.loads(json.dumps(SFT))
    del data["val_dataset_settings"]["sources"][0]["records_path"]
    settings, removed = salvage(SftExperimentSettings, data, failed(data))
    assert removed[0] == "val_dataset_settings.sources"
    assert unsettled("val_dataset_settings.sources.0.records_path: x does not exist", removed)


def test_a_required_block_that_fails_leaves_no_settings() -> None:
    data = json.loads(json.dumps(SFT))
    data["model_settings"] = {"model_type": "causal"}  # model_path missing
    settings, _ = salvage(SftExperimentSettings, data, failed(data))
    assert settings is None
