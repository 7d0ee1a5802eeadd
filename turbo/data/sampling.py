"""The sampling dataset: inference_chat outputs whose answers are to be sampled (and scored)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from turbo.data.conversation import encode_conversations, with_system_prompt
from turbo.data.readers import Located, read_jsonl, sample_source
from turbo.data.records import ChatMessage, Record
from turbo.data.report import DatasetReport, SourceReport
from turbo.errors import DataError
from turbo.settings.datasets.sampling import SamplingDatasetSettings


class SamplingAnswer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    id: str
    content: str


class SamplingRecord(Record):
    dataset_name: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    answers: list[SamplingAnswer]
    rewards: dict[str, float] | None = None

    @model_validator(mode="after")
    def _consistent_ids(self) -> SamplingRecord:
        ids = [answer.id for answer in self.answers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"answers: answer ids must be unique, got {ids}")
        unknown = sorted(set(self.rewards or {}) - set(ids))
        if unknown:
            raise ValueError(f"rewards: ids {unknown} are not answer ids")
        return self


@dataclass(frozen=True)
class SamplingItem:
    source: str
    record: Located[SamplingRecord]


def read_sampling_records(
    settings: SamplingDatasetSettings, seed: int
) -> tuple[list[SamplingItem], DatasetReport]:
    """Every sampled record of every source; records without answers are dropped and reported."""
    items: list[SamplingItem] = []
    report = DatasetReport()
    for source in settings.sources:
        located = read_jsonl(source.records_path, SamplingRecord)
        chosen = sample_source(located, source, seed)
        source_report = SourceReport(
            source.name, str(source.records_path), read=len(located), sampled=len(chosen)
        )
        for item in chosen:
            if not item.record.answers:
                source_report.drop("no answers", item.record.id)
                continue
            source_report.keep(len(item.record.answers), False)
            items.append(SamplingItem(source.name, item))
        report.sources.append(source_report)
    if not items:
        raise DataError(f"no record with answers in the dataset: {report.summary()}")
    return items, report


def answer_sequences(
    items: list[SamplingItem], settings: SamplingDatasetSettings, tokenizer: Any
) -> tuple[list[list[int]], int]:
    """Token ids of messages + answer for every answer of every record (record by record), and how
    many were truncated."""
    sources = {source.name: source for source in settings.sources}
    conversations = []
    for item in items:
        messages = with_system_prompt(item.record.record.messages, sources[item.source])
        for answer in item.record.record.answers:
            bot = ChatMessage(role="bot", content=answer.content)
            conversations.append(([*messages, bot], item.record.where))
    encoded = encode_conversations(conversations, settings.chat_settings, tokenizer)
    return [e.input_ids for e in encoded], sum(e.truncated for e in encoded)


def sampled_row(item: SamplingItem, kept: list[str], rewards: dict[str, float] | None) -> dict[str, Any]:
    """The record as read with only the kept answers (in their original order) and their rewards."""
    row = item.record.record.model_dump(mode="json", exclude_none=True)
    keep = set(kept)
    row["dataset_name"] = row.get("dataset_name", item.source)
    row["answers"] = [answer for answer in row["answers"] if answer["id"] in keep]
    if rewards is not None:
        row["rewards"] = {answer_id: rewards[answer_id] for answer_id in kept if answer_id in rewards}
    else:
        row.pop("rewards", None)
    return row
