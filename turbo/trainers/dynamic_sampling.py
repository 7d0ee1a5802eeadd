"""DAPO's dynamic sampling for train_grpo (Yu et al. 2025): a group whose rewards are all equal has zero
advantages and teaches nothing; drop it and sample more prompts until the rollout has the groups it needs or
the rounds run out. Extra prompts are a seeded draw from the training prompts (seed, step, round), so a
resumed run draws the same ones and the Trainer's data position is untouched."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from turbo.trainers.losses.advantages import informative_groups

ROUND_STRIDE = 100_003


def round_seed(seed: int, step: int, round: int) -> int:
    """The seed of the prompts and answers of an extra round of one step."""
    return seed + step + round * ROUND_STRIDE


def draw_prompts(prompts: list[dict[str, Any]], count: int, seed: int) -> list[dict[str, Any]]:
    """`count` prompts drawn without replacement (with, when there are fewer) by a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    if count <= len(prompts):
        picked = torch.randperm(len(prompts), generator=generator)[:count]
    else:
        picked = torch.randint(len(prompts), (count,), generator=generator)
    return [prompts[int(index)] for index in picked]


def _pad_cat(tensors: list[torch.Tensor], value: int) -> torch.Tensor:
    width = max(tensor.shape[1] for tensor in tensors)
    padded = [
        torch.nn.functional.pad(tensor, (0, width - tensor.shape[1]), value=value) for tensor in tensors
    ]
    return torch.cat(padded)


PAD_VALUES = {"input_ids": None, "attention_mask": 0, "labels": -100}


def take_rows(parts: list[Any], rows: list[int], pad_token_id: int) -> Any:
    """One rollout of the given rows (indices into the parts concatenated), field by field: tensors and
    lists are concatenated and indexed, the scoring batch right-padded to its longest row, seconds added."""
    first = parts[0]
    index = torch.tensor(rows, device=first.rewards.device)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(first):
        column = [getattr(part, field.name) for part in parts]
        if field.name == "batch":
            values["batch"] = {
                key: _pad_cat(
                    [batch[key] for batch in column],
                    pad_token_id if PAD_VALUES.get(key) is None else PAD_VALUES[key],
                )[index]
                for key in column[0]
            }
        elif isinstance(column[0], torch.Tensor):  # per row; per token ones (the policy mask) right-padded
            joined = _pad_cat(column, 0) if column[0].dim() == 2 else torch.cat(column)
            values[field.name] = joined[index]
        elif isinstance(column[0], list):
            joined = [item for part in column for item in part]
            values[field.name] = [joined[row] for row in rows]
        elif isinstance(column[0], dict):
            values[field.name] = {
                key: [[item for part in column for item in part[key]][row] for row in rows]
                for key in column[0]
            }
        elif isinstance(column[0], float):
            values[field.name] = sum(column)
        else:  # None (media of text prompts)
            values[field.name] = column[0]
    return type(first)(**values)


def fill_groups(
    first: Any,
    sample: Callable[[int], Any],
    group_size: int,
    groups: int,
    max_rounds: int,
    pad_token_id: int,
) -> tuple[Any, dict[str, float]]:
    """Keep the informative groups of `first`, then of `sample(round)` for round 1, 2, ... until `groups`
    are kept or `max_rounds` rollouts were sampled. When the rounds run out the rollout is topped up with
    dropped groups (zero advantages: they add no policy gradient), so a step always trains `groups` groups.
    Returns the rollout and its metrics."""
    parts = [first]
    kept: list[int] = []
    dropped: list[int] = []
    offset = 0
    rounds = 0
    while True:
        rounds += 1
        part = parts[-1]
        for group, informative in enumerate(informative_groups(part.rewards, group_size).tolist()):
            (kept if informative else dropped).append(offset + group)
        offset += len(part.answers) // group_size
        if len(kept) >= groups or rounds >= max_rounds:
            break
        parts.append(sample(rounds))
    chosen = kept[:groups]
    topped_up = dropped[: groups - len(chosen)]
    chosen = sorted(chosen + topped_up)
    rows = [group * group_size + i for group in chosen for i in range(group_size)]
    metrics = {
        "dynamic_sampling/rounds": float(rounds),
        "dynamic_sampling/groups_dropped": float(len(dropped) - len(topped_up)),
        "dynamic_sampling/informative_groups": float(min(len(kept), groups)),
    }
    if len(parts) == 1 and len(rows) == len(first.answers):
        return first, metrics
    return take_rows(parts, rows, pad_token_id), metrics
