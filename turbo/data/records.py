"""What one JSONL line is, per dataset type."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ROLE_ALIASES = {"assistant": "bot", "human": "user", "gpt": "bot"}


class Record(BaseModel):
    """Records keep unknown keys (they are written back with the answers) but check the known ones."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    id: str

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    role: Literal["user", "bot", "system"]
    content: str
    disable_loss: bool = False

    @field_validator("role", mode="before")
    @classmethod
    def _known_role_names(cls, value: Any) -> Any:
        return ROLE_ALIASES.get(value, value) if isinstance(value, str) else value


class ChatRecord(Record):
    messages: list[ChatMessage] = Field(min_length=1)
    meta: dict[str, Any] | None = None


class AnswerRecord(Record):
    """A context and one answer to score (the `rm` dataset type of inference_rm)."""

    context: list[ChatMessage] = Field(default_factory=list)
    answer: ChatMessage
