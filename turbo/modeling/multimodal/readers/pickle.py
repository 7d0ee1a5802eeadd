"""Pre-encoded features: one tensor per media key in the file preprocess_multimodal_dataset wrote.

With a file (reader_path), a media item's features are under its key (the path relative to the media
root) or, as the original writes them, under its file name. Without one (the original's
`reader_path: null`), they are in a `*.safetensors` file beside the media file, under its file name.
"""

from __future__ import annotations

from pathlib import Path

import torch

from turbo.errors import ModelError
from turbo.media import MediaItem


def _keys(path: Path) -> set[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return set(handle.keys())
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"cannot read pre-encoded features from {path}: {exc}") from exc


class PickleReader:
    """Reads encoder outputs (tokens, width) by media key; the media files themselves are not needed."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._files: dict[Path, set[str]] = {}  # features file -> its keys
        if self.path is not None:
            self._files[self.path] = _keys(self.path)

    def _files_for(self, item: MediaItem) -> dict[Path, set[str]]:
        if self.path is not None:
            return self._files
        folder = item.path.parent
        found = {}
        for candidate in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            if candidate not in self._files:
                self._files[candidate] = _keys(candidate)
            found[candidate] = self._files[candidate]
        return found

    def _locate(self, item: MediaItem) -> tuple[Path, str] | None:
        for file, keys in self._files_for(item).items():
            for key in (item.key, item.path.name):
                if key in keys:
                    return file, key
        return None

    def missing(self, item: MediaItem) -> str | None:
        if self._locate(item) is not None:
            return None
        if self.path is None:
            return (
                f"no features for {item.path.name!r} in a *.safetensors file beside it ({item.path.parent}); "
                "run preprocess_multimodal_dataset on that folder, or set reader_path"
            )
        return (
            f"no features for key {item.key!r} (or {item.path.name!r}) in {self.path}; "
            "run preprocess_multimodal_dataset with dataset_path set to the media root"
        )

    def read(self, item: MediaItem) -> torch.Tensor:
        from safetensors import safe_open

        located = self._locate(item)
        if located is None:
            raise ModelError(f"{item.where}: {self.missing(item)}")
        file, key = located
        with safe_open(str(file), framework="pt") as handle:
            return handle.get_tensor(key)
