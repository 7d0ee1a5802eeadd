"""Modality readers: a media file (or a pre-encoded key) -> the tensor its encoder takes."""

from __future__ import annotations

from typing import Any

from turbo.modeling.multimodal.readers.audio import WhisperReader
from turbo.modeling.multimodal.readers.images import ClipReader, SiglipReader
from turbo.modeling.multimodal.readers.pickle import PickleReader

READERS: dict[str, type] = {
    "clip": ClipReader,
    "siglip": SiglipReader,
    "whisper": WhisperReader,
    "pickle": PickleReader,
}


def build_reader(settings: Any) -> Any:
    return READERS[settings.reader_type](settings.reader_path)


__all__ = ["READERS", "build_reader"]
