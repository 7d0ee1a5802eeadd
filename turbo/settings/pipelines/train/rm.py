"""train_rm: a reward model (a one-output sequence classifier) on pair preferences."""

from __future__ import annotations

from turbo.settings.cherry_pick import RmCherryPickSettings
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.model import reward_model_problems
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.problems import Problem


class RmExperimentSettings(BaseTrainExperimentSettings):
    """Loss -log sigmoid(r_w - r_l); evaluation reports the share of pairs with r_w > r_l."""

    train_dataset_settings: PairPreferencesDatasetSettings
    val_dataset_settings: PairPreferencesDatasetSettings | None = None
    cherry_pick_settings: RmCherryPickSettings | None = None

    def cross_field_problems(self) -> list[Problem]:
        return [
            *super().cross_field_problems(),
            *reward_model_problems(self.model_settings, "model_settings", "for train_rm (a reward head)"),
        ]
