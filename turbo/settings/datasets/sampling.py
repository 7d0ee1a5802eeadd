from __future__ import annotations

from typing import Literal

from pydantic import Field

from turbo.settings.base import StrictModel
from turbo.settings.datasets.base import Sources
from turbo.settings.datasets.rendering import ChatRenderSettings


class SamplingDatasetSettings(StrictModel):
    """Outputs of inference_chat: `{"id", "dataset_name", "messages", "answers": [{"id", "content"}],
    "rewards": optional {answer_id: float}}`. A reward model scores messages + each answer."""

    dataset_type: Literal["sampling"]
    sources: Sources
    chat_settings: ChatRenderSettings = Field(
        ChatRenderSettings(keep_end=True),
        description="How messages + an answer are rendered for the reward model (truncation keeps the end).",
    )
