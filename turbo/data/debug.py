"""data_debug_path and the held-out split: the first training samples as the model sees them, and
data_ratio / data_train_split_ratio applied to the tokenised training samples (seeded)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, TypeVar

from turbo.data.chat import marked_text
from turbo.errors import DataError

DEBUG_SAMPLES = 10
T = TypeVar("T")


def media_positions(input_ids: Sequence[int], media: Sequence[Any], token_ids: dict[str, int]) -> list[dict]:
    """Each media item with the [first, last] positions whose embeddings its projected features replace
    (the runs of its modality token, in order)."""
    runs: dict[str, list[list[int]]] = {}
    by_id = {token: modality for modality, token in token_ids.items()}
    previous = None
    for position, token in enumerate(input_ids):
        modality = by_id.get(token)
        if modality is not None and previous == token:
            runs[modality][-1][1] = position
        elif modality is not None:
            runs.setdefault(modality, []).append([position, position])
        previous = token
    taken: dict[str, int] = {}
    rows = []
    for item in media:
        index = taken.get(item.modality, 0)
        taken[item.modality] = index + 1
        found = runs.get(item.modality, [])
        rows.append(
            {
                "modality": item.modality,
                "key": item.key,
                "path": str(item.path),
                "positions": found[index] if index < len(found) else None,
            }
        )
    return rows


def debug_row(sample: Any, tokenizer: Any, token_ids: dict[str, int] | None = None) -> dict[str, Any]:
    """One sample as the model sees it, whatever its dataset type."""
    located = sample.record
    row: dict[str, Any] = {"id": getattr(located.record, "id", None), "where": located.where}
    row["source"] = getattr(sample, "source", None) or getattr(sample, "name", None)
    if hasattr(sample, "labels"):  # chat, multimodal
        row["text"] = marked_text(sample.input_ids, sample.labels, tokenizer)
        row["input_ids"], row["labels"] = list(sample.input_ids), list(sample.labels)
    elif hasattr(sample, "chosen_ids"):  # pair preferences: the answers carry the loss
        row["prompt"] = tokenizer.decode(sample.prompt_ids)
        row["chosen"] = f"[[{tokenizer.decode(sample.chosen_ids)}]]"
        row["rejected"] = f"[[{tokenizer.decode(sample.rejected_ids)}]]"
        for name in ("prompt_ids", "chosen_ids", "rejected_ids"):
            row[name] = list(getattr(sample, name))
    elif hasattr(sample, "answer_ids"):  # KTO
        row["text"] = tokenizer.decode(sample.prompt_ids) + f"[[{tokenizer.decode(sample.answer_ids)}]]"
        row["prompt_ids"], row["answer_ids"] = list(sample.prompt_ids), list(sample.answer_ids)
        row["is_desirable"] = sample.is_desirable
    else:  # classification
        row["text"] = tokenizer.decode(sample.input_ids)
        row["input_ids"] = list(sample.input_ids)
        row["label"] = getattr(sample, "label", None)
    if getattr(sample, "media", None):
        ids = sample.input_ids if hasattr(sample, "input_ids") else sample.prompt_ids  # pairs: the prompt's
        row["media"] = media_positions(ids, sample.media, token_ids or {})
    return row


def debug_rows(samples: Sequence[Any], tokenizer: Any, token_ids: dict[str, int] | None = None) -> list[dict]:
    return [debug_row(sample, tokenizer, token_ids) for sample in samples[:DEBUG_SAMPLES]]


def share_and_split(
    samples: list[T], data_ratio: float | None, split_ratio: float | None, seed: int
) -> tuple[list[T], list[T]]:
    """(training samples, held-out samples): first data_ratio of the samples (seeded), then
    data_train_split_ratio of those for training and the rest held out; both keep the file order."""
    if data_ratio is not None and data_ratio < 1:
        keep = max(1, round(len(samples) * data_ratio))
        chosen = sorted(random.Random(f"{seed}:data_ratio").sample(range(len(samples)), keep))
        samples = [samples[i] for i in chosen]
    if split_ratio is None:
        return samples, []
    train_count = round(len(samples) * split_ratio)
    if not 0 < train_count < len(samples):
        raise DataError(
            f"data_train_split_ratio {split_ratio} of {len(samples)} training samples leaves "
            f"{train_count} for training and {len(samples) - train_count} held out; both need one"
        )
    rng = random.Random(f"{seed}:data_train_split_ratio")
    held = set(rng.sample(range(len(samples)), len(samples) - train_count))
    return (
        [s for i, s in enumerate(samples) if i not in held],
        [s for i, s in enumerate(samples) if i in held],
    )
