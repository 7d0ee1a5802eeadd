"""Modality encoders: what a reader gives -> (items, tokens, width). All load from encoder_path."""

from __future__ import annotations

from typing import Any

from turbo.modeling.multimodal.encoders.audio import WhisperEncoder
from turbo.modeling.multimodal.encoders.vision import ClipEncoder, PassThroughEncoder, SiglipEncoder
from turbo.modeling.multimodal.shapes import encoder_config, encoder_shape

ENCODERS: dict[str, type] = {"clip": ClipEncoder, "siglip": SiglipEncoder, "whisper": WhisperEncoder}


def build_encoder(settings: Any, dtype: Any = None) -> Any:
    """The encoder module; with is_pickle the features pass through and no weights load."""
    if settings.is_pickle:
        return PassThroughEncoder()
    return ENCODERS[settings.modality_encoder_type].load(settings.encoder_path, dtype)


__all__ = ["ENCODERS", "build_encoder", "encoder_config", "encoder_shape"]
