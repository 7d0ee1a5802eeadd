"""Pair preferences for distillation DPO: each pair rendered for the policy and for the reward model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from turbo.settings.base import StrictModel
from turbo.settings.datasets.base import Sources
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.datasets.rendering import ChatRenderSettings


class DdpoRewardRendering(StrictModel):
    """How the reward model sees a pair (its own template and length budget)."""

    chat_settings: ChatRenderSettings = Field(
        ChatRenderSettings(keep_end=True),
        description="The reward model's template and max_tokens_count (truncation keeps the end).",
    )


class DdpoDatasetSettings(StrictModel):
    """Pair-preference records (`{"id", "context", "answer_w", "answer_l"}` or the flat form), rendered
    with `chat_settings` for the policy and with `pair_preferences.chat_settings` for the reward model.
    A pair that fits only one of the two budgets is dropped from both."""

    dataset_type: Literal["ddpo"]
    sources: Sources
    chat_settings: ChatRenderSettings = Field(
        ChatRenderSettings(keep_end=True),
        description="The policy's template and max_tokens_count (truncation keeps the end).",
    )
    pair_preferences: DdpoRewardRendering = Field(
        DdpoRewardRendering(), description="The reward model's rendering of the same pairs."
    )

    def _pairs(self, chat_settings: ChatRenderSettings) -> PairPreferencesDatasetSettings:
        return PairPreferencesDatasetSettings(
            dataset_type="pair_preferences",
            sources=self.sources,
            chat_settings=chat_settings.model_copy(update={"keep_end": True}),
        )

    @property
    def policy_pairs(self) -> PairPreferencesDatasetSettings:
        """The pairs as the policy (and its reference) reads them."""
        return self._pairs(self.chat_settings)

    @property
    def reward_pairs(self) -> PairPreferencesDatasetSettings:
        """The pairs as the reward model reads them."""
        return self._pairs(self.pair_preferences.chat_settings)
