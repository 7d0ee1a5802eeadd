"""Packing: several tokenised samples in one row, each attending only to itself.

A packed row is the samples' token ids one after another, with position ids that restart at 0 for
each sample and no attention mask: transformers reads the restarts as sample boundaries and builds
a block-diagonal causal mask (flash-attention kernels use them as variable-length sequences). The
first label of every sample is ignored, so no sample is trained to predict the next one's first
token, just as unpacked: the loss of a packed batch is the token-mean loss of the same samples
unpacked.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from turbo.labels import IGNORE_INDEX

# a padding-free batch's sample offsets (flash-attention's variable-length kernels, turbo_varlen)
OFFSET_KEYS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")


def pack_lengths(lengths: list[int], capacity: int) -> list[list[int]]:
    """Group sample indices into bins of total length <= capacity (best fit, longest first).

    Each bin lists its indices in their original order; bins are ordered by their longest sample.
    """
    too_long = [length for length in lengths if length > capacity]
    if too_long:
        raise ValueError(f"a sample of {max(too_long)} tokens does not fit a packed row of {capacity}")
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        size = lengths[index]
        slot = bisect.bisect_left(free, (size, -1))  # the fullest bin that still has room
        if slot == len(free):
            bins.append([index])
            bisect.insort(free, (capacity - size, len(bins) - 1))
        else:
            room, chosen = free.pop(slot)
            bins[chosen].append(index)
            bisect.insort(free, (room - size, chosen))
    return [sorted(group) for group in bins]


def pack_features(features: list[dict[str, list[int]]], capacity: int) -> list[dict[str, list[int]]]:
    """Rows of input_ids, labels and position_ids, each holding whole samples up to `capacity` tokens."""
    rows = []
    for group in pack_lengths([len(feature["input_ids"]) for feature in features], capacity):
        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for index in group:
            feature = features[index]
            input_ids += feature["input_ids"]
            labels += [IGNORE_INDEX, *feature["labels"][1:]]
            position_ids += range(len(feature["input_ids"]))
        rows.append({"input_ids": input_ids, "labels": labels, "position_ids": position_ids})
    return rows


@dataclass(frozen=True)
class FlatCollator:
    """Padding-free batches: every row of the batch one after another in a single row of shape (1, total).

    Position ids restart at 0 for each sample (packed rows keep their restarts) and `cu_seq_lens_q/k`
    give the samples' start offsets, as flash-attention's variable-length kernels take them (turbo's
    "turbo_varlen" attention reads them on CPU). No position is padding. The first label of each row is
    ignored, so the last token of one row is never trained to predict the next row's first token
    (unshifted, a row's first label is never predicted anyway: the loss is the same).
    """

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for feature in features:
            length = len(feature["input_ids"])
            input_ids += feature["input_ids"]
            labels += [IGNORE_INDEX, *feature["labels"][1:]]
            position_ids += feature.get("position_ids") or range(length)
        starts = [i for i, position in enumerate(position_ids) if position == 0] + [len(position_ids)]
        offsets = torch.tensor(starts, dtype=torch.int32)
        longest = max(end - start for start, end in zip(starts, starts[1:], strict=False))
        return {
            "input_ids": torch.tensor([input_ids]),
            "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([position_ids]),
            "cu_seq_lens_q": offsets,
            "cu_seq_lens_k": offsets,
            "max_length_q": longest,
            "max_length_k": longest,
            "use_cache": False,
        }
