"""The one plain type that the data layer (records -> samples) and the modeling layer (media readers)
both speak: a media file named by a record. It lives below both so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MediaItem:
    modality: str
    key: str  # the path relative to the media root, as preprocess_multimodal_dataset names it
    path: Path
    where: str  # file:line of the record


EXTENSIONS = {
    "image": (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"),
    "audio": (".wav", ".flac", ".ogg", ".mp3"),
}


def find_media(folder: Path, extensions: tuple[str, ...]) -> list[MediaItem]:
    """Every file under `folder` with one of the endings, sorted, keyed by its posix path relative to it."""
    items = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in extensions:
            key = path.relative_to(folder).as_posix()
            items.append(MediaItem("", key, path, str(path)))
    return items
