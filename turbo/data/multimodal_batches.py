"""Multimodal samples as a torch dataset (media read lazily, errors name file:line) and their collator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from turbo.data.multimodal import MediaItem, MultimodalSample
from turbo.labels import IGNORE_INDEX


class MultimodalTorchDataset(torch.utils.data.Dataset):
    """Each item: token ids, labels, mask, and its media read by the modality's reader."""

    def __init__(self, samples: Sequence[MultimodalSample], readers: dict[str, Any]) -> None:
        self.samples = samples
        self.readers = readers

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        features = self.samples[index].features()
        features["media"] = read_media(features["media"], self.readers)
        return features


def read_media(items: list[MediaItem], readers: dict[str, Any]) -> list[tuple[str, torch.Tensor]]:
    return [(item.modality, readers[item.modality].read(item)) for item in items]


def stack_media(media: Sequence[list[tuple[str, torch.Tensor]]]) -> dict[str, torch.Tensor]:
    """Per modality, the tensors of every sample in batch order (the order their spans appear)."""
    grouped: dict[str, list[torch.Tensor]] = {}
    for sample_media in media:
        for modality, tensor in sample_media:
            grouped.setdefault(modality, []).append(tensor)
    return {modality: torch.stack(tensors) for modality, tensors in grouped.items()}


class MultimodalCollator:
    """Right-pads ids (pad_token_id), labels (-100) and masks (0); stacks media per modality."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(f["input_ids"]) for f in features)
        batch: dict[str, Any] = {}
        for key, pad in (("input_ids", self.pad_token_id), ("labels", IGNORE_INDEX), ("attention_mask", 0)):
            batch[key] = torch.tensor(
                [f[key] + [pad] * (width - len(f[key])) for f in features], dtype=torch.long
            )
        batch["modality_inputs"] = stack_media([f["media"] for f in features])
        return batch


def media_inputs(samples: Sequence[MultimodalSample], readers: dict[str, Any], device: Any) -> Any:
    """extra_inputs for generate_answers: the media of samples[start:end], stacked per modality."""

    def inputs(start: int, end: int) -> dict[str, Any]:
        stacked = stack_media([read_media(sample.media, readers) for sample in samples[start:end]])
        return {"modality_inputs": {modality: tensor.to(device) for modality, tensor in stacked.items()}}

    return inputs
