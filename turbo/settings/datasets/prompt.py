"""Prompt records for online RL (train_grpo, train_ppo): `{"id"?, "prompt": "...", "reference"?: ...}`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from turbo.settings.base import PositiveCount, StrictModel
from turbo.settings.datasets.base import Sources
from turbo.settings.datasets.chat import ChatDatasetSettings, ChatPromptTemplate


class PromptDatasetSettings(StrictModel):
    """One prompt per record: `{"id"?: ..., "prompt": "text", "reference"?: "answer"}` (other keys are
    kept and ignored). The prompt is rendered as a single user message (after the source's
    system_prompt, if any) with `prompt_template` or the tokenizer's chat template, followed by the
    bot's generation prefix; with `raw: true` it is the model's input as written. `reference` (a string
    or a number) is the answer the rule rewards compare with."""

    dataset_type: Literal["prompt"]
    sources: Sources
    prompt_template: ChatPromptTemplate | None = Field(
        None, description="None: the tokenizer's own chat template (not read with raw: true)."
    )
    raw: bool = Field(
        False,
        description="The prompt text is the model's input as is: tokenised with the tokenizer's own "
        "special tokens (e.g. BOS), no chat template, no system prompt. For base models and "
        "completion-style prompts.",
    )
    max_tokens_count: PositiveCount | None = Field(
        None, description="Longer prompts are dropped (counted in the data report), never cut."
    )

    @model_validator(mode="after")
    def _raw_takes_no_template(self) -> PromptDatasetSettings:
        if self.raw and self.prompt_template is not None:
            raise ValueError(
                "raw: true feeds the prompt text as is; remove prompt_template (or set raw: false)"
            )
        if self.raw and any(source.system_prompt is not None for source in self.sources):
            raise ValueError("raw: true has no messages to put a system_prompt before; remove system_prompt")
        return self

    def as_chat(self) -> ChatDatasetSettings:
        """The chat settings that render each prompt as one user message."""
        return ChatDatasetSettings(
            dataset_type="chat",
            sources=self.sources,
            prompt_template=self.prompt_template,
            max_tokens_count=self.max_tokens_count,
        )


RlPromptDatasetSettings = Annotated[
    ChatDatasetSettings | PromptDatasetSettings, Field(discriminator="dataset_type")
]
