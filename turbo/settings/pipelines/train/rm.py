"""train_rm: a reward model (a one-output sequence classifier) on pair preferences."""

from __future__ import annotations

from pydantic import model_validator

from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings


class RmExperimentSettings(BaseTrainExperimentSettings):
    """Loss -log sigmoid(r_w - r_l); evaluation reports the share of pairs with r_w > r_l."""

    train_dataset_settings: PairPreferencesDatasetSettings
    val_dataset_settings: PairPreferencesDatasetSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RmExperimentSettings:
        model = self.model_settings
        if model.model_type != "seq_cls":
            raise ValueError("model_settings.model_type must be 'seq_cls' for train_rm (a reward head)")
        num_labels = model.model_kwargs.get("num_labels", 1)
        if num_labels != 1:
            raise ValueError(f"a reward model has one output; model_kwargs.num_labels is {num_labels}")
        if self.trainer_settings.eval_strategy != "no" and self.val_dataset_settings is None:
            raise ValueError(
                f"trainer_settings.eval_strategy is '{self.trainer_settings.eval_strategy}' "
                "but there is no val_dataset_settings"
            )
        return self
