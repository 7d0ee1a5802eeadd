"""Modality encoders: what a reader gives -> (items, tokens, width). All load from encoder_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from turbo.errors import SettingsError
from turbo.modeling.multimodal.encoders.audio import WhisperEncoder
from turbo.modeling.multimodal.encoders.vision import ClipEncoder, PassThroughEncoder, SiglipEncoder

ENCODERS: dict[str, type] = {"clip": ClipEncoder, "siglip": SiglipEncoder, "whisper": WhisperEncoder}


def encoder_config(settings: Any) -> dict[str, Any]:
    """The encoder's config.json (read without loading any weights)."""
    path = Path(settings.encoder_path) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SettingsError(f"encoder_path: cannot read {path}: {exc}") from None


def encoder_shape(settings: Any) -> tuple[int, int]:
    """(tokens per item, width) the encoder gives, from its config alone."""
    encoder = ENCODERS[settings.modality_encoder_type]
    config = encoder_config(settings)
    try:
        return encoder.n_tokens(config), encoder.width(config)
    except (KeyError, TypeError) as exc:
        raise SettingsError(
            f"encoder_path: {settings.encoder_path}/config.json is not a {settings.modality_encoder_type} "
            f"config (missing {exc})"
        ) from None


def build_encoder(settings: Any, dtype: Any = None) -> Any:
    """The encoder module; with is_pickle the features pass through and no weights load."""
    if settings.is_pickle:
        return PassThroughEncoder()
    return ENCODERS[settings.modality_encoder_type].load(settings.encoder_path, dtype)


__all__ = ["ENCODERS", "build_encoder", "encoder_config", "encoder_shape"]
