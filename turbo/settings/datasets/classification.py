from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from turbo.settings.base import StrictModel
from turbo.settings.datasets.base import DatasetSourceSettings, check_unique_source_names
from turbo.settings.datasets.rendering import ChatRenderSettings


class ClassificationDatasetSettings(StrictModel):
    """Records `{"id", "messages", "label": int}`; the whole conversation is classified."""

    dataset_type: Literal["classification"]
    sources: list[DatasetSourceSettings] = Field(min_length=1)
    chat_settings: ChatRenderSettings = ChatRenderSettings()

    @field_validator("sources")
    @classmethod
    def _unique_sources(cls, sources: list[DatasetSourceSettings]) -> list[DatasetSourceSettings]:
        return check_unique_source_names(sources)
