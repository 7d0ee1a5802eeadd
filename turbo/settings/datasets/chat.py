from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from turbo.settings.base import PositiveCount, StrictModel
from turbo.settings.datasets.base import Sources


class ChatPromptTemplate(StrictModel):
    """Each message is rendered as prefix_template.format(role=tag) + content + suffix_template."""

    role_tag_mapping: dict[str, str] = Field(
        description="Role (user, bot, system) -> the tag written for it."
    )
    prefix_template: str = Field(description="Must contain {role}, e.g. '<RS>{role}\\n'.")
    suffix_template: str = Field("", description="Text after each message (e.g. the end-of-turn tag).")

    @field_validator("prefix_template")
    @classmethod
    def _has_role(cls, value: str) -> str:
        fields = _format_fields(value)
        if fields != [("role", None, "")]:
            if [name for name, _, _ in fields] == ["role"]:
                raise ValueError("write {role} plainly, with no !conversion or :format after it")
            raise ValueError("must contain {role} exactly once and no other {field}")
        return value

    @field_validator("suffix_template")
    @classmethod
    def _no_fields(cls, value: str) -> str:
        if _format_fields(value):
            raise ValueError("takes no {field}; write literal braces as {{ and }}")
        return value


def _format_fields(template: str) -> list[tuple[str, str | None, str]]:
    """(name, conversion, format spec) of every {field} in a str.format template."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{exc}; write literal braces as {{{{ and }}}}") from None
    return [(name, conversion, spec or "") for _, name, spec, conversion in parsed if name is not None]


class ChatDatasetSettings(StrictModel):
    """Chat records (a list of messages each) rendered with a prompt template and tokenised for training
    or inference."""

    dataset_type: Literal["chat"]
    sources: Sources
    prompt_template: ChatPromptTemplate | None = Field(
        None, description="None: the tokenizer's own chat template."
    )
    max_tokens_count: PositiveCount | None = Field(None, description="Longer samples lose whole messages.")
    only_answer_loss: bool = Field(True, description="Train only on bot messages.")
    only_last_replica_loss: bool = Field(False, description="Train only on the last bot message.")
    keep_end: bool = Field(False, description="Truncate from the start instead of the end.")
    random_cut: bool = Field(False, description="End each sample at a random bot message (seeded).")
    dataset_num_proc: PositiveCount | None = Field(
        None,
        le=64,
        description="Tokenise in this many processes (the ids are the same as with one); None: one.",
    )
    pack_to_max_length: bool = Field(
        False,
        description="Training: pack several samples into one sequence of up to max_tokens_count tokens; "
        "attention stays within each sample (position ids restart) and the loss is unchanged.",
    )

    @model_validator(mode="after")
    def _packing_has_a_length(self) -> ChatDatasetSettings:
        if self.pack_to_max_length and self.max_tokens_count is None:
            raise ValueError("pack_to_max_length packs samples up to max_tokens_count; set max_tokens_count")
        return self


def refuse_packing(dataset: ChatDatasetSettings) -> ChatDatasetSettings:
    """Inference and cherry-pick data answer one record at a time: packing would be silently ignored."""
    for name in ("pack_to_max_length", "dataset_concatenate_samples"):
        if getattr(dataset, name, False):
            raise ValueError(
                f"{name} joins training rows; inference answers one record at a time, "
                f"so remove {name} (or set it to false)"
            )
    return dataset
