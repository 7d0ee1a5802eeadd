"""`rm` records (context + one answer) as token ids, each with its record and source: what inference_rm
scores and what `turbo validate --data` counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turbo.data.conversation import encode_conversations, with_system_prompt
from turbo.data.readers import read_jsonl, sample_source
from turbo.data.records import AnswerRecord
from turbo.data.report import DatasetReport, SourceReport
from turbo.settings.datasets.rm import RmDatasetSettings


@dataclass(frozen=True)
class AnswerSample:
    record: AnswerRecord
    source: str
    input_ids: list[int]
    truncated: bool


def build_answer_samples(
    settings: RmDatasetSettings, tokenizer: Any, seed: int
) -> tuple[list[AnswerSample], DatasetReport]:
    """Every sampled record of every source as context + answer token ids, in order, and the report."""
    records, conversations = [], []
    for source in settings.sources:
        for item in sample_source(read_jsonl(source.records_path, AnswerRecord), source, seed):
            messages = [*with_system_prompt(item.record.context, source), item.record.answer]
            conversations.append((messages, item.where))
            records.append((item.record, source.name))
    encoded = encode_conversations(conversations, settings.chat_settings, tokenizer)
    samples = [
        AnswerSample(record, source, list(e.input_ids), bool(e.truncated))
        for (record, source), e in zip(records, encoded, strict=True)
    ]
    report = DatasetReport()
    for source in settings.sources:
        own = [sample for sample in samples if sample.source == source.name]
        source_report = SourceReport(source.name, str(source.records_path), len(own), len(own))
        for sample in own:
            source_report.keep(len(sample.input_ids), sample.truncated)
        report.sources.append(source_report)
    return samples, report
