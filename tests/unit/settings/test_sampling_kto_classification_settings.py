import pytest
from pydantic import ValidationError

from turbo.settings.pipelines.sampling import RmSamplingSettings, RsoSamplingSettings
from turbo.settings.pipelines.train.classification import ClassificationExperimentSettings
from turbo.settings.pipelines.train.kto import KtoExperimentSettings

SOURCE = {"name": "s", "records_path": "x.jsonl", "sample_rate": 1.0}
RM = {"model_path": "m", "model_type": "seq_cls"}


def test_legacy_sampling_layout_is_nested() -> None:
    settings = RsoSamplingSettings.model_validate(
        {
            "dataset_settings": {"sources": [SOURCE], "dataset_type": "sampling", "chat_dataset": {}},
            "rm": RM,
            "tokenizer_settings": {"use_fast": False},
            "rm_batch_size": 3,
            "N": 2,
            "beta": 0.1,
            "save_path": "out",
        }
    )
    assert settings.num_answers == 2 and settings.rm_settings.batch == 3
    assert settings.rm_settings.tokenizer_settings.use_fast is False


def test_reward_model_needs_one_output() -> None:
    with pytest.raises(ValidationError, match="a reward model has one output"):
        RmSamplingSettings.model_validate(
            {
                "dataset_settings": {"sources": [SOURCE], "dataset_type": "sampling"},
                "rm_settings": {"model_settings": {**RM, "model_kwargs": {"num_labels": 2}}},
                "num_answers": 1,
                "save_path": "out",
            }
        )


def kto(**trainer) -> dict:
    return {
        "log_path": "x",
        "model_settings": {"model_path": "m"},
        "train_dataset_settings": {"sources": [SOURCE], "dataset_type": "kto"},
        "trainer_settings": trainer,
    }


def test_kto_full_fine_tuning_needs_a_reference() -> None:
    with pytest.raises(ValidationError, match="use_ref_model: true or precompute_ref_log_probs"):
        KtoExperimentSettings.model_validate(kto(use_ref_model=False))
    KtoExperimentSettings.model_validate(kto(use_ref_model=False, precompute_ref_log_probs=True))
    settings = KtoExperimentSettings.model_validate(kto(beta=0.3))
    assert "beta" not in settings.trainer_settings.training_arguments()


def test_classification_alpha_length_matches_num_labels() -> None:
    data = {
        "log_path": "x",
        "model_settings": {"model_path": "m", "model_type": "seq_cls", "model_kwargs": {"num_labels": 3}},
        "train_dataset_settings": {"sources": [SOURCE], "dataset_type": "classification"},
        "trainer_settings": {"loss_settings": {"alpha": [1.0, 2.0], "gamma": 2}},
    }
    with pytest.raises(ValidationError, match="one weight per label"):
        ClassificationExperimentSettings.model_validate(data)
    with pytest.raises(ValidationError, match="did you mean 'gamma'"):
        ClassificationExperimentSettings.model_validate(
            {**data, "trainer_settings": {"loss_settings": {"gama": 2}}}
        )
