"""Pre-encoded features: one tensor per media key in the file preprocess_multimodal_dataset wrote."""

from __future__ import annotations

from pathlib import Path

import torch

from turbo.media import MediaItem
from turbo.errors import ModelError


class PickleReader:
    """Reads encoder outputs (tokens, width) by media key; the media files themselves are not needed."""

    def __init__(self, path: str | Path) -> None:
        from safetensors import safe_open

        self.path = Path(path)
        try:
            with safe_open(str(self.path), framework="pt") as handle:
                self.keys = set(handle.keys())
        except Exception as exc:  # safetensors raises its own error types
            raise ModelError(f"cannot read pre-encoded features from {self.path}: {exc}") from exc

    def missing(self, item: MediaItem) -> str | None:
        if item.key in self.keys:
            return None
        return (
            f"no features for key {item.key!r} in {self.path}; "
            "run preprocess_multimodal_dataset with dataset_path set to the media root"
        )

    def read(self, item: MediaItem) -> torch.Tensor:
        from safetensors import safe_open

        with safe_open(str(self.path), framework="pt") as handle:
            return handle.get_tensor(item.key)
