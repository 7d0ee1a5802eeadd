from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from turbo.settings.base import StrictModel
from turbo.settings.paths import InputFolder

# AutoTokenizer.from_pretrained arguments turbo passes itself -> the setting that owns each
TOKENIZER_KWARGS_OWNED = {
    "use_fast": "tokenizer_settings.use_fast",
    "trust_remote_code": "model_settings.transformers_settings.trust_remote_code",
    "local_files_only": "nothing (turbo always loads local files only)",
    "pretrained_model_name_or_path": "tokenizer_settings.tokenizer_path",
}


class TokenizerSettings(StrictModel):
    """Where the tokenizer is loaded from, and how."""

    tokenizer_path: InputFolder | None = Field(None, description="Defaults to model_settings.model_path.")
    use_fast: bool = Field(
        True, description="The fast (Rust) tokenizer; false: the slow one (sentencepiece)."
    )
    tokenizer_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra AutoTokenizer.from_pretrained kwargs."
    )

    @field_validator("tokenizer_kwargs")
    @classmethod
    def _not_owned(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(value) & set(TOKENIZER_KWARGS_OWNED))
        if reserved:
            raise ValueError(
                "; ".join(f"{key} is set by turbo: use {TOKENIZER_KWARGS_OWNED[key]}" for key in reserved)
            )
        return value


class SpecialTokensSettings(StrictModel):
    """Tokens added only where the tokenizer has none; their ids are copied to the model config."""

    bos_token: str | None = Field(
        None, description="The beginning-of-sequence token. None: the tokenizer's own."
    )
    eos_token: str | None = Field(None, description="The end-of-sequence token. None: the tokenizer's own.")
    pad_token: str | None = Field(None, description="The padding token. None: the tokenizer's own.")
    unk_token: str | None = Field(None, description="The unknown-token token. None: the tokenizer's own.")
    sep_token: str | None = Field(None, description="The separator token. None: the tokenizer's own.")
