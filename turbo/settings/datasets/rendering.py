"""How a dataset type built on chat messages renders them: template and length budget.

Shared by the dataset types whose records hold chat messages but are not chat datasets
(classification, kto, sampling); it is the `chat_settings` block of their dataset settings.
"""

from __future__ import annotations

from pydantic import Field

from turbo.settings.base import PositiveCount, StrictModel
from turbo.settings.datasets.chat import ChatPromptTemplate


class ChatRenderSettings(StrictModel):
    """How messages become text: the prompt template, truncation and the loss mask."""

    prompt_template: ChatPromptTemplate | None = Field(
        None, description="None: the tokenizer's own chat template."
    )
    max_tokens_count: PositiveCount | None = Field(
        None, description="Longer samples are truncated (see keep_end); None: no limit."
    )
    keep_end: bool = Field(
        False, description="Truncate from the start (keep the end of the conversation) instead of the end."
    )
