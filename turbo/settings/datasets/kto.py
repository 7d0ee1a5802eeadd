from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from turbo.settings.base import StrictModel
from turbo.settings.datasets.base import DatasetSourceSettings, check_unique_source_names
from turbo.settings.datasets.rendering import ChatRenderSettings


class KtoDatasetSettings(StrictModel):
    """Records `{"id", "context": [messages], "answer": message, "is_desirable": bool}`.

    Only the answer is trained; samples longer than max_tokens_count lose their earliest context
    messages (never the answer).
    """

    dataset_type: Literal["kto"]
    sources: list[DatasetSourceSettings] = Field(min_length=1)
    chat_settings: ChatRenderSettings = ChatRenderSettings()

    @field_validator("sources")
    @classmethod
    def _unique_sources(cls, sources: list[DatasetSourceSettings]) -> list[DatasetSourceSettings]:
        return check_unique_source_names(sources)
