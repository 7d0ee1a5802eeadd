"""Prompts of online RL: chat records (the conversation up to its last user message) or prompt records
(`{"id"?, "prompt", "reference"?}`), tokenised as samples ready for generation."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from turbo.data.chat import ChatSample, build_chat_samples, tokenize_records
from turbo.data.readers import Located, read_jsonl, sample_source
from turbo.data.records import ChatMessage, ChatRecord, Record
from turbo.data.report import DatasetReport, SourceReport
from turbo.errors import DataError
from turbo.labels import IGNORE_INDEX
from turbo.settings.datasets.prompt import PromptDatasetSettings

LONG_PROMPT = "longer than max_tokens_count"


class PromptRecord(Record):
    prompt: str = Field(min_length=1)
    reference: str | int | float | None = None


def as_chat(item: Located[PromptRecord]) -> Located[ChatRecord]:
    """The prompt as a one-message conversation; its reference kept where chat records keep it."""
    record = item.record
    chat = ChatRecord(
        id=record.id,
        messages=[ChatMessage(role="user", content=record.prompt)],
        **({} if record.reference is None else {"reference": record.reference}),
    )
    return Located(chat, item.path, item.line, item.indexed)


def _raw_samples(
    records: list[Located[ChatRecord]],
    source: str,
    settings: PromptDatasetSettings,
    tokenizer: Any,
    report: SourceReport,
) -> list[ChatSample]:
    """The prompt text as the input, tokenised with the tokenizer's own special tokens."""
    texts = [item.record.messages[0].content for item in records]
    encoded = tokenizer(texts, add_special_tokens=True)["input_ids"] if texts else []
    samples = []
    for item, ids in zip(records, encoded, strict=True):
        if settings.max_tokens_count is not None and len(ids) > settings.max_tokens_count:
            report.drop(LONG_PROMPT, item.record.id)
            continue
        report.keep(len(ids), False)
        samples.append(
            ChatSample(list(ids), [IGNORE_INDEX] * len(ids), source, item, list(item.record.messages), False)
        )
    return samples


def build_prompt_samples(
    settings: PromptDatasetSettings, tokenizer: Any, *, seed: int
) -> tuple[list[ChatSample], DatasetReport]:
    """Read, sample, render and tokenise every source of prompt records. DataError (file:line) on a bad
    record; DataError if no prompt is usable."""
    chat_settings = settings.as_chat()
    samples: list[ChatSample] = []
    report = DatasetReport()
    for source in settings.sources:
        located = read_jsonl(source.records_path, PromptRecord)
        chosen = [as_chat(item) for item in sample_source(located, source, seed)]
        source_report = SourceReport(
            source.name, str(source.records_path), read=len(located), sampled=len(chosen)
        )
        if settings.raw:
            samples.extend(_raw_samples(chosen, source.name, settings, tokenizer, source_report))
        else:
            samples.extend(
                tokenize_records(chosen, source, chat_settings, tokenizer, seed, True, source_report)
            )
        report.sources.append(source_report)
    if not samples:
        raise DataError(f"no usable prompt in the dataset: {report.summary()}")
    return samples, report


def build_rl_prompts(settings: Any, tokenizer: Any, *, seed: int) -> tuple[list[ChatSample], DatasetReport]:
    """The prompts of a `prompt` or a `chat` dataset (chat: up to the last user message)."""
    if isinstance(settings, PromptDatasetSettings):
        return build_prompt_samples(settings, tokenizer, seed=seed)
    return build_chat_samples(settings, tokenizer, seed=seed, inference=True)


def prompt_features(samples: list[Any], tokenizer: Any) -> list[dict[str, Any]]:
    """Chat samples built for inference -> the prompt ids, the prompt text and the reference answer: the
    record's `reference` field, else the content of its final bot message, else None."""
    features = []
    for sample in samples:
        record = sample.record.record
        reference = (record.model_extra or {}).get("reference")
        if reference is None and record.messages[-1].role == "bot":
            reference = record.messages[-1].content
        features.append(
            {
                "id": record.id,
                "prompt_ids": list(sample.input_ids),
                "prompt": tokenizer.decode(sample.input_ids, skip_special_tokens=False),
                "reference": None if reference is None else str(reference),
            }
        )
    return features


def multimodal_prompt_features(
    samples: list[Any], tokenizer: Any, readers: dict[str, Any]
) -> list[dict[str, Any]]:
    """Multimodal samples built for inference -> prompt features with their media read (modality, tensor);
    the reference answer is the record's `reference` field."""
    from turbo.data.multimodal_batches import read_media

    return [
        {
            "id": sample.record.record.id,
            "prompt_ids": list(sample.input_ids),
            "prompt": tokenizer.decode(sample.input_ids, skip_special_tokens=False),
            "reference": None
            if (reference := (sample.record.record.model_extra or {}).get("reference")) is None
            else str(reference),
            "media": read_media(sample.media, readers),
        }
        for sample in samples
    ]
