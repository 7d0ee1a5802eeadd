from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from turbo.settings.aliases import nest_chat_settings
from turbo.settings.base import PositiveCount, StrictModel
from turbo.settings.datasets.base import Sources
from turbo.settings.datasets.rendering import ChatRenderSettings


class PairPreferencesDatasetSettings(StrictModel):
    """Records `{"id", "context": [messages], "answer_w": message, "answer_l": message,
    "precomputed_margin": optional float}`, or the flat `{"prompt", "chosen", "rejected"}` form.

    The chosen and rejected answers share the prompt tokens exactly. Samples longer than
    max_tokens_count lose their earliest context messages (never an answer). `prompt_template` and
    `max_tokens_count` may also be written at the top level, as in a chat dataset.
    """

    dataset_type: Literal["pair_preferences"]
    sources: Sources
    chat_settings: ChatRenderSettings = Field(
        ChatRenderSettings(keep_end=True),
        description="How context + answer are rendered; truncation always keeps the end of the context.",
    )
    max_prompt_length: PositiveCount | None = Field(
        None,
        description="Prompt tokens (the context and the bot's head) kept at most; a longer prompt loses "
        "tokens at its start (the latest context is kept). Applied after max_tokens_count, which drops "
        "whole earliest messages. None: no limit.",
    )
    max_target_length: PositiveCount | None = Field(
        None,
        description="Tokens of each answer (chosen and rejected, with the end-of-sequence token) kept at "
        "most; a longer answer loses its end. None: no limit.",
    )
    dataset_num_proc: PositiveCount | None = Field(
        None,
        le=64,
        description="Tokenise in this many processes (the ids are the same as with one); None: one.",
    )
    score_margin: float | None = Field(
        None,
        allow_inf_nan=False,
        description="The margin m of every pair of this dataset that has no score_margin / "
        "precomputed_margin of its own: loss_type sigmoid_with_margin trains on "
        "-log sigmoid(beta * (chosen log-ratio - rejected log-ratio) - m).",
    )

    add_labels: bool = Field(
        True,
        description="The original's switch for building answer labels. turbo always builds the labels "
        "the method reads (DPO and KTO score the answers; a reward model reads none), so either value "
        "trains the same.",
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_chat_fields(cls, data: Any) -> Any:
        return nest_chat_settings(data)

    @field_validator("chat_settings")
    @classmethod
    def _keeps_the_end(cls, value: ChatRenderSettings) -> ChatRenderSettings:
        if "keep_end" in value.model_fields_set and not value.keep_end:
            raise ValueError(
                "pair preferences always drop the earliest context messages (keep_end: true); "
                "remove keep_end: false"
            )
        return value.model_copy(update={"keep_end": True})
