"""The KTO dataset: `{"id", "context", "answer", "is_desirable"}` -> prompt and answer token ids.

Each sample also gets a mismatched partner (the answer of another sample after the same prompt),
whose log-ratio estimates the KL term of the loss. Partners are fixed once, from a seeded
permutation, so reference log-probs can be precomputed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field, field_validator

from turbo.data.conversation import render, special_ids, with_system_prompt
from turbo.data.readers import Located, read_jsonl, sample_source
from turbo.data.records import ChatMessage, Record
from turbo.data.report import DatasetReport, SourceReport
from turbo.errors import DataError
from turbo.labels import IGNORE_INDEX
from turbo.settings.datasets.kto import KtoDatasetSettings


class KtoRecord(Record):
    context: list[ChatMessage] = Field(default_factory=list)
    answer: ChatMessage
    is_desirable: bool

    @field_validator("answer")
    @classmethod
    def _bot_answer(cls, answer: ChatMessage) -> ChatMessage:
        if answer.role != "bot":
            raise ValueError(f"the answer must be a bot message, got role '{answer.role}'")
        return answer


@dataclass(frozen=True)
class KtoSample:
    prompt_ids: list[int]
    answer_ids: list[int]
    is_desirable: bool
    source: str
    record: Located[KtoRecord]


def build_kto_samples(
    settings: KtoDatasetSettings, tokenizer: Any, *, seed: int
) -> tuple[list[KtoSample], DatasetReport]:
    """Read, sample and tokenise every source; too-long samples lose their earliest context messages."""
    samples: list[KtoSample] = []
    report = DatasetReport()
    start, end = special_ids(settings.chat_settings, tokenizer)
    budget = settings.chat_settings.max_tokens_count or 10**12
    for source in settings.sources:
        located = read_jsonl(source.records_path, KtoRecord)
        chosen = sample_source(located, source, seed)
        source_report = SourceReport(
            source.name, str(source.records_path), read=len(located), sampled=len(chosen)
        )
        for item in chosen:
            messages = [*with_system_prompt(item.record.context, source), item.record.answer]
            segments, _ = render(messages, settings.chat_settings, tokenizer, item.where)
            ids = tokenizer([text for segment in segments for text in segment], add_special_tokens=False)[
                "input_ids"
            ]
            pieces = [ids[2 * i] + ids[2 * i + 1] for i in range(len(segments) - 1)]
            answer_head, answer_ids = ids[-2], ids[-1] + end
            first = 0
            fixed = len(start) + len(answer_head) + len(answer_ids)
            while first < len(pieces) and fixed + sum(len(p) for p in pieces[first:]) > budget:
                first += 1
            if fixed > budget:
                source_report.drop("answer longer than max_tokens_count", item.record.id)
                continue
            prompt_ids = start + [token for piece in pieces[first:] for token in piece] + answer_head
            source_report.keep(len(prompt_ids) + len(answer_ids), first > 0)
            samples.append(KtoSample(prompt_ids, answer_ids, item.record.is_desirable, source.name, item))
        report.sources.append(source_report)
    if not samples:
        raise DataError(f"no usable record in the dataset: {report.summary()}")
    return samples, report


def kl_partners(count: int, seed: int) -> list[int]:
    """partner[i] != i (when count > 1): each sample's successor in a seeded random cycle."""
    order = list(range(count))
    random.Random(f"{seed}:kto-kl").shuffle(order)
    partners = [0] * count
    for position, index in enumerate(order):
        partners[index] = order[(position + 1) % count]
    return partners


def _sequence(prompt: list[int], answer: list[int], max_tokens: int | None) -> tuple[list[int], list[int]]:
    if max_tokens is not None and len(prompt) + len(answer) > max_tokens:
        prompt = prompt[len(prompt) + len(answer) - max_tokens :]  # a KL pair keeps its answer whole
    return prompt + answer, [IGNORE_INDEX] * len(prompt) + answer


def kto_features(samples: list[KtoSample], seed: int, max_tokens: int | None) -> list[dict[str, Any]]:
    """Trainer features: the sample (input_ids, labels on the answer), its KL pair, is_desirable."""
    features = []
    for sample, partner in zip(samples, kl_partners(len(samples), seed), strict=True):
        input_ids, labels = _sequence(sample.prompt_ids, sample.answer_ids, None)
        kl_input_ids, kl_labels = _sequence(sample.prompt_ids, samples[partner].answer_ids, max_tokens)
        features.append(
            {
                "input_ids": input_ids,
                "labels": labels,
                "kl_input_ids": kl_input_ids,
                "kl_labels": kl_labels,
                "is_desirable": sample.is_desirable,
            }
        )
    return features


class KtoCollator:
    """Right-pads the sequences and their KL pairs; passes precomputed reference log-probs through."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def _pad(self, rows: list[list[int]], value: int) -> torch.Tensor:
        width = max(len(row) for row in rows)
        return torch.tensor([row + [value] * (width - len(row)) for row in rows], dtype=torch.long)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for prefix in ("", "kl_"):
            ids = [f[f"{prefix}input_ids"] for f in features]
            batch[f"{prefix}input_ids"] = self._pad(ids, self.pad_token_id)
            batch[f"{prefix}attention_mask"] = self._pad([[1] * len(row) for row in ids], 0)
            batch[f"{prefix}labels"] = self._pad([f[f"{prefix}labels"] for f in features], IGNORE_INDEX)
        batch["is_desirable"] = torch.tensor([f["is_desirable"] for f in features], dtype=torch.bool)
        for key in ("reference_logps", "reference_kl_logps"):
            if key in features[0]:
                batch[key] = torch.tensor([f[key] for f in features], dtype=torch.float32)
        return batch
