"""Answers to score with a reward model: the original's `rm` dataset type."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from turbo.settings.aliases import nest_chat_settings
from turbo.settings.base import StrictModel
from turbo.settings.datasets.base import Sources
from turbo.settings.datasets.rendering import ChatRenderSettings


class RmDatasetSettings(StrictModel):
    """Records `{"id", "context": [messages], "answer": message}`: context + answer is scored once.
    `prompt_template` and `max_tokens_count` may be written at the top level (the original layout)."""

    dataset_type: Literal["rm"]
    sources: Sources
    chat_settings: ChatRenderSettings = Field(
        ChatRenderSettings(keep_end=True),
        description="How context + answer are rendered; truncation keeps the end (the answer).",
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_chat_fields(cls, data: Any) -> Any:
        return nest_chat_settings(data)

    @field_validator("chat_settings")
    @classmethod
    def _keeps_the_end(cls, value: ChatRenderSettings) -> ChatRenderSettings:
        return value if "keep_end" in value.model_fields_set else value.model_copy(update={"keep_end": True})
