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
