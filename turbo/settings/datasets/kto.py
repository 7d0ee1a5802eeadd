from __future__ import annotations

from typing import Literal

from turbo.settings.base import StrictModel
from turbo.settings.datasets.base import Sources
from turbo.settings.datasets.rendering import ChatRenderSettings


class KtoDatasetSettings(StrictModel):
    """Records `{"id", "context": [messages], "answer": message, "is_desirable": bool}`.

    Only the answer is trained; samples longer than max_tokens_count lose their earliest context
    messages (never the answer).
    """

    dataset_type: Literal["kto"]
    sources: Sources
    chat_settings: ChatRenderSettings = ChatRenderSettings()
