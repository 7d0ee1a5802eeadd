"""Multimodal fixtures: the tiny CLIP, SigLIP and Whisper encoders and the drawn media, built once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def multimodal_models(fixture_models: Path) -> Path:
    """tests/fixtures/models/{clip_tiny, siglip_tiny, whisper_tiny} beside llama_tiny, and the media."""
    from build_multimodal import build_all

    return build_all(fixture_models)
