"""train_rm: a reward model (a one-output sequence classifier) on pair preferences."""

from __future__ import annotations

from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.problems import Problem
from turbo.settings.scoring_cherry_pick import PairCherryPickSettings


class RmExperimentSettings(BaseTrainExperimentSettings):
    """Loss -log sigmoid(r_w - r_l); evaluation reports the share of pairs with r_w > r_l."""

    train_dataset_settings: PairPreferencesDatasetSettings
    val_dataset_settings: PairPreferencesDatasetSettings | None = None
    cherry_pick_settings: PairCherryPickSettings | None = None

    def cross_field_problems(self) -> list[Problem]:
        problems = super().cross_field_problems()
        model = self.model_settings
        if model.model_type != "seq_cls":
            problems.append(("model_settings.model_type", "must be 'seq_cls' for train_rm (a reward head)"))
        num_labels = model.model_kwargs.get("num_labels", 1)
        if num_labels != 1:
            where = "model_settings.model_kwargs.num_labels"
            problems.append((where, f"a reward model has one output; this is {num_labels}"))
        return problems
