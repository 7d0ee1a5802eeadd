"""What a metric reads: samples with their answers (and, for model metrics, the model)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from turbo.data.records import ChatMessage

# label -> one value per sample (None where the metric does not apply, e.g. no reference)
Scores = dict[str, list[float | None]]


@dataclass(frozen=True)
class EvalSample:
    """One cherry-pick or inference prompt: what metrics read and what the answers file keeps."""

    source: str  # the dataset (source) name
    row: dict[str, Any]  # the record as read, written with the answers
    messages: list[ChatMessage] = field(default_factory=list)  # the prompt (no trailing bot answer)
    reference: str | None = None  # the record's own answer or label, when it has one
    prompt_ids: list[int] | None = None  # the prompt as the model sees it
    payload: Any = None  # what the method's generate function reads


@dataclass
class ModelContext:
    """The trained model for metrics that read log-probs; `reference()` lends the reference model."""

    model: Any
    tokenizer: Any
    batch: int = 4
    reference: Callable[[], AbstractContextManager[Any]] | None = None
    encode_prompt: Callable[[list[ChatMessage]], list[int]] | None = None  # messages -> prompt ids
    device: Any = None  # where a reward model runs


def mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return sum(present) / len(present) if present else None


def words(text: str) -> list[str]:
    return text.split()


def ngrams(tokens: list[str], n: int) -> Iterator[tuple[str, ...]]:
    return (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
