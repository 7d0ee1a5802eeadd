"""RAG data: passages for build_index (streamed), questions, and chat samples with retrieved documents.

A RAG question is the last user message of a chat record. Its documents go into that message:
`title + title_sep + text` per passage (cut to max_doc_length generator tokens), joined and followed
by the question with doc_sep, as transformers' RAG joins them. train_rag (RAG-Sequence) puts each
retrieved passage into a sample of its own; inference_rag joins the n_docs passages into one prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from turbo.data.chat import ChatSample, tokenize_records
from turbo.data.readers import Located
from turbo.data.records import ChatMessage
from turbo.data.report import SourceReport
from turbo.errors import DataError
from turbo.labels import IGNORE_INDEX
from turbo.settings.datasets import ChatDatasetSettings, DatasetSourceSettings
from turbo.settings.rag import RetrievalSettings


class PassageRecord(BaseModel):
    """One line of a passages JSONL file."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    title: str = ""
    text: str = Field(min_length=1)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Document(Protocol):
    title: str
    text: str


def _jsonl_passages(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = PassageRecord.model_validate(json.loads(line))
            except ValueError as exc:  # JSON and validation errors
                detail = (
                    "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                    if isinstance(exc, ValidationError)
                    else str(exc)
                )
                raise DataError(f"{path}:{number}: {detail}") from None
            yield {"id": record.id, "title": record.title, "text": record.text}


def _dataset_passages(path: Path, chunk: int) -> Iterator[dict[str, str]]:
    from datasets import load_from_disk

    try:
        dataset = load_from_disk(str(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"passages_source: {path} is not a folder saved by datasets: {exc}") from exc
    if "text" not in dataset.column_names:
        raise DataError(
            f"passages_source: {path} has no text column; it has {', '.join(dataset.column_names)}"
        )
    columns = [name for name in ("id", "title", "text") if name in dataset.column_names]
    offset = 0
    for batch in dataset.select_columns(columns).iter(batch_size=chunk):
        for k, text in enumerate(batch["text"]):
            yield {
                "id": str(batch["id"][k]) if "id" in batch else str(offset + k),
                "title": (batch["title"][k] or "") if "title" in batch else "",
                "text": text or "",
            }
        offset += len(batch["text"])


def iter_passages(path: str | Path, chunk: int = 1024) -> Iterator[list[dict[str, str]]]:
    """The passages of a JSONL file or a datasets folder in lists of `chunk`, never all at once."""
    path = Path(path)
    rows = _dataset_passages(path, chunk) if path.is_dir() else _jsonl_passages(path)
    batch: list[dict[str, str]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == chunk:
            yield batch
            batch = []
    if batch:
        yield batch


def question_of(messages: list[ChatMessage], where: str) -> str:
    """The question: the last user message."""
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    raise DataError(f"{where}: no user message to retrieve documents for")


def document_context(documents: list[Document], tokenizer: Any, settings: RetrievalSettings) -> str:
    """The documents as the generator reads them: each cut to max_doc_length tokens, joined by doc_sep."""
    texts = [f"{d.title}{settings.title_sep}{d.text}" if d.title else d.text for d in documents]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    cut = [
        tokenizer.decode(row[: settings.max_doc_length]) if len(row) > settings.max_doc_length else text
        for text, row in zip(texts, ids, strict=True)
    ]
    return settings.doc_sep.join(cut)


def with_context(messages: list[ChatMessage], context: str, doc_sep: str) -> list[ChatMessage]:
    """The messages with the documents put before the last user message's text."""
    last = max(i for i, m in enumerate(messages) if m.role == "user")
    updated = messages[last].model_copy(update={"content": f"{context}{doc_sep}{messages[last].content}"})
    return [*messages[:last], updated, *messages[last + 1 :]]


def samples_with_documents(
    samples: list[ChatSample],
    documents: list[list[Document]],
    settings: ChatDatasetSettings,
    tokenizer: Any,
    retrieval: RetrievalSettings,
    *,
    inference: bool,
    joined: bool,
) -> list[ChatSample]:
    """Each sample re-tokenised with its documents: one sample per document (RAG-Sequence training),
    or one with all of them joined (`joined`, inference)."""
    plain = settings.model_copy(update={"random_cut": False})  # the samples are already cut
    out: list[ChatSample] = []
    for sample, docs in zip(samples, documents, strict=True):
        groups = [docs] if joined else [[doc] for doc in docs]
        located = [
            Located(
                sample.record.record.model_copy(
                    update={
                        "messages": with_context(
                            sample.messages, document_context(group, tokenizer, retrieval), retrieval.doc_sep
                        )
                    }
                ),
                sample.record.path,
                sample.record.line,
            )
            for group in groups
        ]
        source = DatasetSourceSettings(name=sample.source, records_path=sample.record.path, sample_rate=1.0)
        report = SourceReport(sample.source, str(sample.record.path), read=len(located), sampled=len(located))
        made = tokenize_records(located, source, plain, tokenizer, 0, inference, report)
        if len(made) != len(located):
            reasons = ", ".join(report.dropped)
            raise DataError(
                f"{sample.record.where}: with its retrieved documents the record is unusable ({reasons}); "
                "raise max_tokens_count or lower retrieval_settings.max_doc_length"
            )
        out.extend(made)
    return out


def pad_right(rows: list[list[int]], value: int) -> Any:
    import torch

    width = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (width - len(row)) for row in rows], dtype=torch.long)


def generator_batch(samples: list[ChatSample], pad_token_id: int) -> dict[str, Any]:
    """Right-padded input_ids, attention_mask and labels (IGNORE_INDEX where not trained)."""
    return {
        "input_ids": pad_right([s.input_ids for s in samples], pad_token_id),
        "attention_mask": pad_right([[1] * len(s.input_ids) for s in samples], 0),
        "labels": pad_right([s.labels for s in samples], IGNORE_INDEX),
    }


@dataclass(frozen=True)
class GeneratorInputs:
    """Builds the generator's batch for samples and their retrieved documents (one row per document)."""

    settings: ChatDatasetSettings
    tokenizer: Any
    retrieval: RetrievalSettings

    def __call__(self, samples: list[ChatSample], documents: list[list[Document]]) -> dict[str, Any]:
        rows = samples_with_documents(
            samples, documents, self.settings, self.tokenizer, self.retrieval, inference=False, joined=False
        )
        return generator_batch(rows, self.tokenizer.pad_token_id)


@dataclass(frozen=True)
class RagCollator:
    """A batch of chat samples -> the tokenised questions for the encoder, and the samples themselves
    (the generator's inputs are made after retrieval, inside the model)."""

    question_tokenizer: Any
    retrieval: RetrievalSettings

    def __call__(self, samples: list[ChatSample]) -> dict[str, Any]:
        questions = [self.retrieval.prefix + question_of(s.messages, s.record.where) for s in samples]
        tokens = self.question_tokenizer(
            questions,
            padding=True,
            truncation=True,
            max_length=self.retrieval.query_encoder_max_length,
            return_tensors="pt",
        )
        return {
            "question_input_ids": tokens["input_ids"],
            "question_attention_mask": tokens["attention_mask"],
            "samples": list(samples),
        }
