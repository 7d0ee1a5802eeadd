from __future__ import annotations

from pathlib import Path
from typing import Any

from turbo.errors import ModelError
from turbo.settings.model import ModelSettings
from turbo.settings.tokenizer import SpecialTokensSettings, TokenizerSettings

SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "pad_token", "unk_token", "sep_token")


def load_tokenizer(
    tokenizer_settings: TokenizerSettings,
    model_settings: ModelSettings,
    special_tokens: SpecialTokensSettings | None = None,
) -> Any:
    """The tokenizer from a local folder, with the missing special tokens added."""
    from transformers import AutoTokenizer

    path = Path(tokenizer_settings.tokenizer_path or model_settings.model_path)
    if not path.exists():
        raise ModelError(f"tokenizer folder {path} does not exist")
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path,
            use_fast=tokenizer_settings.use_fast,
            local_files_only=True,
            trust_remote_code=model_settings.transformers_settings.trust_remote_code,
            **tokenizer_settings.tokenizer_kwargs,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {path}: {exc}") from exc
    add_missing_special_tokens(tokenizer, special_tokens or SpecialTokensSettings())
    new_tokens = [
        token
        for token in (model_settings.embeddings_initialization_strategy or {})
        if token not in tokenizer.get_vocab()
    ]
    if new_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": new_tokens})
    return tokenizer


def add_missing_special_tokens(tokenizer: Any, settings: SpecialTokensSettings) -> None:
    """Set each configured special token the tokenizer lacks; a pad token falls back to eos."""
    missing = {
        name: value
        for name in SPECIAL_TOKEN_NAMES
        if (value := getattr(settings, name)) is not None and getattr(tokenizer, name) is None
    }
    if missing:
        tokenizer.add_special_tokens(missing)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
