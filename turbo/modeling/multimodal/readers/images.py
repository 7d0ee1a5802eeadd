"""Images decoded with Pillow and prepared by a transformers image processor (its PIL backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from turbo.media import MediaItem
from turbo.errors import DataError, ModelError


class ImageProcessorReader:
    """Reads one image file into pixel values (channels, height, width)."""

    processor_class = ""

    def __init__(self, path: str | Path) -> None:
        import transformers

        try:
            self.processor = getattr(transformers, self.processor_class).from_pretrained(
                str(path), local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load an image processor from {path}: {exc}") from exc

    def missing(self, item: MediaItem) -> str | None:
        return None if item.path.is_file() else f"not found at {item.path}"

    def read(self, item: MediaItem) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(item.path) as image:
                rgb = image.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{item.where}: cannot read image {item.key!r}: {exc}") from None
        pixels: Any = self.processor(images=[rgb], return_tensors="pt")["pixel_values"]
        return pixels[0]


class ClipReader(ImageProcessorReader):
    processor_class = "CLIPImageProcessorPil"


class SiglipReader(ImageProcessorReader):
    processor_class = "SiglipImageProcessorPil"
