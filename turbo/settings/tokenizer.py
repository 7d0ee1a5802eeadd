from __future__ import annotations

from typing import Any

from pydantic import Field

from turbo.settings.base import StrictModel
from turbo.settings.paths import InputFolder


class TokenizerSettings(StrictModel):
    tokenizer_path: InputFolder | None = Field(None, description="Defaults to model_settings.model_path.")
    use_fast: bool = True
    tokenizer_kwargs: dict[str, Any] = Field(default_factory=dict)


class SpecialTokensSettings(StrictModel):
    """Tokens added only where the tokenizer has none; their ids are copied to the model config."""

    bos_token: str | None = None
    eos_token: str | None = None
    pad_token: str | None = None
    unk_token: str | None = None
    sep_token: str | None = None
