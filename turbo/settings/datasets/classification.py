from __future__ import annotations

from typing import Literal

from turbo.settings.base import StrictModel
from turbo.settings.datasets.base import Sources
from turbo.settings.datasets.rendering import ChatRenderSettings


class ClassificationDatasetSettings(StrictModel):
    """Records `{"id", "messages", "label": int}`; the whole conversation is classified."""

    dataset_type: Literal["classification"]
    sources: Sources
    chat_settings: ChatRenderSettings = ChatRenderSettings()
