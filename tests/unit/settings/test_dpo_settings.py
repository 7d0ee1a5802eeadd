"""train_dpo / train_rm / inference_rm settings: loss variants and the reference rules."""

import json

import pytest

from turbo.errors import SettingsError
from turbo.settings.loading import validate_settings
from turbo.settings.pipelines.train.dpo import DpoExperimentSettings
from turbo.settings.pipelines.train.rm import RmExperimentSettings

from ...helpers import CONFIGS

LORA = CONFIGS / "train" / "dpo" / "lora.json"
FULL = CONFIGS / "train" / "dpo" / "full_with_ref_model.json"


def message(data: dict, model: type = DpoExperimentSettings) -> str:
    with pytest.raises(SettingsError) as info:
        validate_settings(data, model, "x.json")
    return str(info.value)


def data(path=LORA, **trainer: object) -> dict:
    loaded = json.loads(path.read_text())
    loaded["trainer_settings"].update(trainer)
    return loaded


def test_each_loss_has_its_own_fields_and_defaults() -> None:
    settings = DpoExperimentSettings.model_validate(data(loss_settings={"loss_type": "simpo"}))
    assert settings.trainer_settings.loss_settings.beta == 2.0
    assert not settings.uses_reference
    text = message(data(loss_settings={"loss_type": "simpo", "delta": 1.0}))
    assert "trainer_settings.loss_settings.delta: unknown field" in text
    text = message(data(loss_settings={"loss_type": "dpo"}))
    assert "'sigmoid'" in text and "'nca_pair'" in text


def test_reference_rules() -> None:
    full = data(FULL)
    full["trainer_settings"]["use_ref_model"] = False
    text = message(full)  # both rules at once, each at its field
    assert "ref_model_settings: is read only with trainer_settings.use_ref_model: true" in text
    assert "trainer_settings.use_ref_model: loss_type 'dpop' needs a reference" in text
    full.pop("ref_model_settings")
    assert "loss_type 'dpop' needs a reference" in message(full)
    full["trainer_settings"]["precompute_ref_log_probs"] = True
    DpoExperimentSettings.model_validate(full)  # precomputed from the starting model: no second copy
    text = message(data(loss_settings={"loss_type": "orpo"}, precompute_ref_log_probs=True))
    assert "reads no reference log-probs" in text
    text = message(data(sync_ref_settings={"sync_ref_model": True}))
    assert "sync_ref_settings.sync_ref_model: updates a separate reference model" in text
    synced = data(FULL)
    synced["trainer_settings"]["sync_ref_settings"] = {"sync_ref_model": True, "alpha": 0.5, "sync_steps": 2}
    settings = DpoExperimentSettings.model_validate(synced)
    assert "sync_ref_settings" not in settings.trainer_settings.training_arguments()


def test_reward_model_needs_a_one_output_head() -> None:
    rm = json.loads((CONFIGS / "train" / "rm" / "full.json").read_text())
    rm["model_settings"]["model_type"] = "causal"
    assert "must be 'seq_cls'" in message(rm, RmExperimentSettings)
