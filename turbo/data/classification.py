"""The classification dataset: `{"id", "messages", "label"}` -> token ids of the conversation and a label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from turbo.data.conversation import encode_conversations, with_system_prompt
from turbo.data.readers import Located, read_jsonl, sample_source
from turbo.data.records import ChatMessage, Record
from turbo.data.report import DatasetReport, SourceReport
from turbo.errors import DataError
from turbo.settings.datasets.classification import ClassificationDatasetSettings


class ClassificationRecord(Record):
    messages: list[ChatMessage] = Field(min_length=1)
    label: int | None = Field(None, ge=0, description="Needed for training; ignored by inference.")


@dataclass(frozen=True)
class ClassificationSample:
    input_ids: list[int]
    source: str
    record: Located[ClassificationRecord]

    @property
    def label(self) -> int | None:
        return self.record.record.label

    def features(self) -> dict[str, Any]:
        features: dict[str, Any] = {"input_ids": self.input_ids, "attention_mask": [1] * len(self.input_ids)}
        if self.label is not None:
            features["labels"] = self.label
        return features


def build_classification_samples(
    settings: ClassificationDatasetSettings, tokenizer: Any, *, seed: int, require_labels: bool
) -> tuple[list[ClassificationSample], DatasetReport]:
    """Read, sample and tokenise every source. Raises DataError on a missing label or if nothing is usable."""
    samples: list[ClassificationSample] = []
    report = DatasetReport()
    for source in settings.sources:
        located = read_jsonl(source.records_path, ClassificationRecord)
        if require_labels:
            for item in located:
                if item.record.label is None:
                    raise DataError(f"{item.where}: label: missing (training needs an integer label)")
        chosen = sample_source(located, source, seed)
        source_report = SourceReport(
            source.name, str(source.records_path), read=len(located), sampled=len(chosen)
        )
        conversations = [(with_system_prompt(item.record.messages, source), item.where) for item in chosen]
        for item, encoded in zip(
            chosen, encode_conversations(conversations, settings.chat_settings, tokenizer), strict=True
        ):
            if not encoded.input_ids:
                source_report.drop("no tokens", item.record.id)
                continue
            source_report.keep(len(encoded.input_ids), encoded.truncated)
            samples.append(ClassificationSample(encoded.input_ids, source.name, item))
        report.sources.append(source_report)
    if not samples:
        raise DataError(f"no usable record in the dataset: {report.summary()}")
    return samples, report


def check_labels(samples: list[ClassificationSample], num_labels: int) -> None:
    """Every label is a class of the model (0 .. num_labels - 1)."""
    for sample in samples:
        if sample.label is not None and sample.label >= num_labels:
            raise DataError(
                f"{sample.record.where}: label {sample.label} is not a class of the model, which has "
                f"{num_labels} labels (0..{num_labels - 1}); set model_settings.model_kwargs.num_labels"
            )
