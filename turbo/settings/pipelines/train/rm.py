"""train_rm: a reward model (a one-output sequence classifier) on pair preferences."""

from __future__ import annotations

from pydantic import model_validator

from turbo.settings.cherry_pick import RmCherryPickSettings
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings, check_evaluation


class RmExperimentSettings(BaseTrainExperimentSettings):
    """Loss -log sigmoid(r_w - r_l); evaluation reports the share of pairs with r_w > r_l."""

    train_dataset_settings: PairPreferencesDatasetSettings
    val_dataset_settings: PairPreferencesDatasetSettings | None = None
    cherry_pick_settings: RmCherryPickSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RmExperimentSettings:
        model = self.model_settings
        if model.model_type != "seq_cls":
            raise ValueError("model_settings.model_type must be 'seq_cls' for train_rm (a reward head)")
        num_labels = model.model_kwargs.get("num_labels", 1)
        if num_labels != 1:
            raise ValueError(f"a reward model has one output; model_kwargs.num_labels is {num_labels}")
        check_evaluation(self.trainer_settings, self.val_dataset_settings, self.cherry_pick_settings)
        return self
