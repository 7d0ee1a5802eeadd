"""inference_rm: score records with one or more reward models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator

from turbo.settings.base import Seed, StrictModel
from turbo.settings.datasets.chat import ChatDatasetSettings, refuse_packing
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.datasets.rm import RmDatasetSettings as AnswersDatasetSettings
from turbo.settings.datasets.sampling import SamplingDatasetSettings
from turbo.settings.pipelines.sampling import RewardModelSettings

RmDatasetSettings = Annotated[
    PairPreferencesDatasetSettings | ChatDatasetSettings | SamplingDatasetSettings | AnswersDatasetSettings,
    Field(discriminator="dataset_type"),
]


class RmInferenceExperimentSettings(StrictModel):
    """Each record gets its rewards: pair preferences {"answer_w", "answer_l"}, a chat conversation one
    "reward", a sampling record {answer id: reward} per answer, an `rm` record (context + answer) one
    "reward"."""

    inference_settings: list[RewardModelSettings] = Field(min_length=1)
    dataset_settings: RmDatasetSettings = Field(description="The records to score (by dataset_type).")
    save_path: Path = Field(description="Folder for one JSONL of scored records per model and source.")
    seed: Seed = Field(42, description="Seeds Python, NumPy and torch (sampling, shuffling, initialisation).")

    @field_validator("dataset_settings")
    @classmethod
    def _no_packing(cls, value: Any) -> Any:
        return refuse_packing(value)
