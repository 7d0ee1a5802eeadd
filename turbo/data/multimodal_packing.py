"""Several multimodal samples in one row: pack_to_max_length (each sample attends only to itself, its
positions restart) and dataset_concatenate_samples (DeepSpeed-VisualChat: consecutive samples joined
into one sequence that attends across them). A row's media are its samples' media in order, so the
k-th image span of the row still takes the k-th image. The first label of every joined sample is
ignored: no sample is trained to predict the next one's first token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from turbo.data.multimodal import MediaItem, MultimodalSample
from turbo.data.packing import pack_lengths
from turbo.labels import IGNORE_INDEX


@dataclass(frozen=True)
class MultimodalRow:
    input_ids: list[int]
    labels: list[int]
    media: list[MediaItem]
    position_ids: list[int] | None = None
    samples: list[MultimodalSample] = field(default_factory=list)

    def features(self) -> dict[str, Any]:
        features: dict[str, Any] = {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "attention_mask": [1] * len(self.input_ids),
            "media": self.media,
        }
        if self.position_ids is not None:
            features["position_ids"] = self.position_ids
        return features


def _row(samples: list[MultimodalSample], restart_positions: bool) -> MultimodalRow:
    input_ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    media: list[MediaItem] = []
    for index, sample in enumerate(samples):
        input_ids += sample.input_ids
        labels += sample.labels if index == 0 else [IGNORE_INDEX, *sample.labels[1:]]
        positions += range(len(sample.input_ids))
        media += sample.media
    return MultimodalRow(input_ids, labels, media, positions if restart_positions else None, samples)


def pack_multimodal(samples: list[MultimodalSample], capacity: int) -> list[MultimodalRow]:
    """pack_to_max_length: best-fit bins of whole samples, positions restarting per sample."""
    groups = pack_lengths([len(sample.input_ids) for sample in samples], capacity)
    return [_row([samples[i] for i in group], restart_positions=True) for group in groups]


def concatenate_multimodal(samples: list[MultimodalSample], capacity: int) -> list[MultimodalRow]:
    """dataset_concatenate_samples: consecutive samples joined while they fit `capacity` tokens."""
    rows, current, length = [], [], 0
    for sample in samples:
        if current and length + len(sample.input_ids) > capacity:
            rows.append(_row(current, restart_positions=False))
            current, length = [], 0
        current.append(sample)
        length += len(sample.input_ids)
    if current:
        rows.append(_row(current, restart_positions=False))
    return rows


class MultimodalRowCollator:
    """MultimodalCollator for rows: packed rows get their position ids (padding is its own block) and no
    attention mask, so transformers reads the restarts as sample boundaries; `use_cache=False`."""

    def __init__(self, pad_token_id: int) -> None:
        from turbo.data.multimodal_batches import MultimodalCollator

        self.base = MultimodalCollator(pad_token_id)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.base(features)
        if any("position_ids" in feature for feature in features):
            width = batch["input_ids"].shape[1]
            batch["position_ids"] = torch.tensor(
                [
                    (f.get("position_ids") or list(range(len(f["input_ids"]))))
                    + list(range(width - len(f["input_ids"])))
                    for f in features
                ]
            )
            del batch["attention_mask"]
            batch["use_cache"] = False
        return batch
