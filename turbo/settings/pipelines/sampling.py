"""random_sample, rm_sample, rso_sample: keep some of the answers of an inference_chat output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from turbo.settings.aliases import nest_legacy_rm_settings
from turbo.settings.base import PositiveCount, Seed, StrictModel
from turbo.settings.datasets.sampling import SamplingDatasetSettings
from turbo.settings.model import ModelSettings, reward_model_problems
from turbo.settings.problems import raise_problems
from turbo.settings.tokenizer import TokenizerSettings


class RewardModelSettings(StrictModel):
    """A sequence-classification model with one output whose logit is the reward."""

    model_settings: ModelSettings
    tokenizer_settings: TokenizerSettings = TokenizerSettings()
    batch: PositiveCount = Field(8, description="Answers scored per forward pass.")

    @model_validator(mode="after")
    def _one_output(self) -> RewardModelSettings:
        raise_problems(
            self, reward_model_problems(self.model_settings, "model_settings", "for a reward model")
        )
        return self


class BaseSamplingSettings(StrictModel):
    dataset_settings: SamplingDatasetSettings
    save_path: Path = Field(description="Folder for one JSONL of sampled records per source.")
    num_answers: PositiveCount = Field(description="Keep at most this many answers per record ('N').")
    seed: Seed = Field(42, description="Seeds record sampling and random choices.")


class RandomSamplingSettings(BaseSamplingSettings):
    """Keep num_answers answers per record, chosen at random (seeded)."""


class RmSamplingSettings(BaseSamplingSettings):
    """Score every answer with a reward model and keep the num_answers best (best-of-N)."""

    rm_settings: RewardModelSettings

    @model_validator(mode="before")
    @classmethod
    def _legacy_layout(cls, data: Any) -> Any:
        return nest_legacy_rm_settings(data)


class RsoSamplingSettings(BaseSamplingSettings):
    """Statistical rejection sampling (Liu et al. 2023, arXiv:2309.06657): score every answer, then
    accept answers while fewer than num_answers are kept, each with probability
    exp((r - r_max) / beta)."""

    rm_settings: RewardModelSettings
    beta: float = Field(gt=0, description="Temperature of the acceptance: small beta keeps only the best.")

    @model_validator(mode="before")
    @classmethod
    def _legacy_layout(cls, data: Any) -> Any:
        return nest_legacy_rm_settings(data)
