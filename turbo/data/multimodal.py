"""The multimodal dataset: chat records with image/audio messages -> token ids, labels and media items.

Each media message becomes start token + n modality tokens + end token. It is rendered and
truncated as one whole message by the chat dataset (so spans stay whole) and never carries labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from turbo.data.chat import ChatSample, tokenize_records
from turbo.data.readers import Located, read_jsonl, sample_source
from turbo.data.records import ROLE_ALIASES, ChatMessage, ChatRecord, Record
from turbo.data.report import DatasetReport, SourceReport
from turbo.errors import DataError
from turbo.labels import IGNORE_INDEX
from turbo.media import MediaItem
from turbo.reading import path_problem
from turbo.settings.datasets.multimodal import MediaSettings, MultimodalDatasetSettings

LLAVA_IMAGE = "<image>"


class MultimodalMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    role: Literal["user", "bot", "system"]
    type: Literal["text", "image", "audio"] = "text"
    content: str = Field(description="The text, or the media path relative to the media root.")
    disable_loss: bool = False

    @field_validator("role", mode="before")
    @classmethod
    def _known_role_names(cls, value: Any) -> Any:
        return ROLE_ALIASES.get(value, value) if isinstance(value, str) else value


def from_llava(data: dict[str, Any]) -> dict[str, Any]:
    """A LLaVA / ShareGPT record ({"image", "conversations": [{"from", "value"}]}) as messages.

    Each "<image>" in a turn takes the next image, in order; with no placeholder at all, the images
    open the first turn.
    """
    images = data.get("image")
    images = [] if images is None else [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not all(isinstance(image, str) for image in images):
        raise ValueError(f"image must be a path or a list of paths, got {json.dumps(data.get('image'))[:60]}")
    queue = list(images)
    messages: list[dict[str, Any]] = []
    turns = data["conversations"]
    if not isinstance(turns, list):
        raise ValueError("conversations must be a list of {from, value} turns")
    for turn in turns:
        if not isinstance(turn, dict) or not {"from", "value"} <= set(turn):
            raise ValueError("each conversation turn needs 'from' and 'value'")
        for index, part in enumerate(str(turn["value"]).split(LLAVA_IMAGE)):
            if index > 0:
                if not queue:
                    raise ValueError(f"more {LLAVA_IMAGE} placeholders than images ({len(images)})")
                messages.append({"role": turn["from"], "type": "image", "content": queue.pop(0)})
            if part.strip():
                messages.append({"role": turn["from"], "type": "text", "content": part.strip()})
    if queue and len(queue) < len(images):
        raise ValueError(
            f"{len(images)} images but only {len(images) - len(queue)} {LLAVA_IMAGE} placeholders"
        )
    first_user = next((i for i, m in enumerate(messages) if m["role"] in ("human", "user")), 0)
    messages[first_user:first_user] = [{"role": "user", "type": "image", "content": path} for path in queue]
    rest = {key: value for key, value in data.items() if key not in ("image", "conversations")}
    return {**rest, "messages": messages}


class MultimodalRecord(Record):
    messages: list[MultimodalMessage] = Field(min_length=1)
    meta: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _llava_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and "conversations" in data and "messages" not in data:
            return from_llava(data)
        return data


class MediaChecker(Protocol):
    def missing(self, item: MediaItem) -> str | None: ...


@dataclass(frozen=True)
class MultimodalSample:
    input_ids: list[int]
    labels: list[int]
    source: str
    record: Located[MultimodalRecord]
    media: list[MediaItem]
    truncated: bool

    def features(self) -> dict[str, Any]:
        return {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "attention_mask": [1] * len(self.input_ids),
            "media": self.media,
        }


def modality_tokens(settings: MultimodalDatasetSettings) -> list[str]:
    return [
        settings.start_modality_token,
        settings.end_modality_token,
        *settings.modality_token_mapping.values(),
    ]


def add_modality_tokens(tokenizer: Any, settings: MultimodalDatasetSettings) -> list[str]:
    """Add the span tokens the tokenizer lacks, as special tokens that never split; returns them."""
    from tokenizers import AddedToken

    new = [token for token in modality_tokens(settings) if token not in tokenizer.get_vocab()]
    if new:
        tokenizer.add_tokens(
            [AddedToken(t, special=True, normalized=False) for t in new], special_tokens=True
        )
    return new


def resolve_media(content: str, root: Path, where: str) -> tuple[str, Path]:
    """(key relative to root, path) of a media reference, relative to the root or (as the original's
    files write them) to the working folder; it may not leave the root."""
    if not content or PurePosixPath(content).is_absolute() or Path(content).is_absolute():
        raise DataError(f"{where}: media path {content!r:.200} must be relative to the media root {root}")
    problem = path_problem(content)
    if problem:
        raise DataError(f"{where}: media path {content!r:.200} {problem}")
    base = root.resolve()
    try:
        path = (base / content).resolve(strict=False)
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a bad name
        raise DataError(f"{where}: media path {content!r:.200} cannot be resolved: {exc}") from None
    if not path.exists():  # the original's files write media paths relative to the working folder
        from_cwd = Path(content).resolve(strict=False)
        if from_cwd.exists() and from_cwd.is_relative_to(base):
            path = from_cwd
    if not path.is_relative_to(base):
        raise DataError(f"{where}: media path {content!r} leaves the media root {root}")
    return path.relative_to(base).as_posix(), path


def convert_media(
    item: Located[MultimodalRecord],
    settings: MediaSettings,
    root: Path,
    readers: dict[str, MediaChecker],
    media_by_message: dict[int, MediaItem],
) -> tuple[Located[ChatRecord], int]:
    """The record as chat messages whose media messages hold their token span."""
    n = settings.n_modality_embeddings
    messages, count = [], 0
    for message in item.record.messages:
        if message.type == "text":
            messages.append(
                ChatMessage(role=message.role, content=message.content, disable_loss=message.disable_loss)
            )
            continue
        if message.type not in readers:
            raise DataError(
                f"{item.where}: a {message.type} message, but modality_reader_settings_mapping has no "
                f"{message.type} reader (it has: {', '.join(readers)})"
            )
        key, path = resolve_media(message.content, root, item.where)
        media = MediaItem(message.type, key, path, item.where)
        problem = readers[message.type].missing(media)
        if problem is not None:
            raise DataError(f"{item.where}: {message.type} {message.content!r}: {problem}")
        token = settings.modality_token_mapping[message.type]
        span = settings.start_modality_token + token * n + settings.end_modality_token
        chat_message = ChatMessage(role=message.role, content=span, disable_loss=True)
        media_by_message[id(chat_message)] = media
        messages.append(chat_message)
        count += 1
    extra = item.record.model_extra or {}
    record = ChatRecord(id=item.record.id, messages=messages, meta=item.record.meta, **extra)
    return Located(record, item.path, item.line, item.indexed), count


def _check_spans(sample: MultimodalSample, tokenizer: Any, settings: MultimodalDatasetSettings) -> None:
    """Exactly one whole span per media item, in order, with no label on it."""
    ids = sample.input_ids
    start, end = (
        tokenizer.convert_tokens_to_ids(t)
        for t in (settings.start_modality_token, settings.end_modality_token)
    )
    token_ids = {m: tokenizer.convert_tokens_to_ids(t) for m, t in settings.modality_token_mapping.items()}
    n = settings.n_modality_embeddings
    expected: list[int] = []
    for media in sample.media:
        expected += [start, *[token_ids[media.modality]] * n, end]
    span_ids = {start, end, *token_ids.values()}
    found = [token for token in ids if token in span_ids]
    if found != expected:
        raise DataError(
            f"{sample.record.where}: the text holds a modality token "
            f"({', '.join(modality_tokens(settings))}) outside a media message; remove it"
        )
    if any(label in span_ids for label in sample.labels if label != IGNORE_INDEX):
        raise DataError(f"{sample.record.where}: a modality token carries a label")


def build_multimodal_samples(
    settings: MultimodalDatasetSettings,
    tokenizer: Any,
    readers: dict[str, MediaChecker],
    *,
    seed: int,
    inference: bool = False,
) -> tuple[list[MultimodalSample], DatasetReport]:
    """Read, check media, render and tokenise every source. The tokenizer must know the span tokens."""
    samples: list[MultimodalSample] = []
    report = DatasetReport()
    for source in settings.sources:
        located = read_jsonl(source.records_path, MultimodalRecord)
        chosen = sample_source(located, source, seed)
        source_report = SourceReport(
            source.name, str(source.records_path), read=len(located), sampled=len(chosen)
        )
        root = Path(settings.media_root or Path(source.records_path).parent)
        media_by_message: dict[int, MediaItem] = {}
        originals: dict[int, Located[MultimodalRecord]] = {}
        converted = []
        for item in chosen:
            chat_item, count = convert_media(item, settings, root, readers, media_by_message)
            if settings.max_media_per_sample is not None and count > settings.max_media_per_sample:
                source_report.drop(f"more than {settings.max_media_per_sample} media items", item.record.id)
                continue
            originals[id(chat_item)] = item
            converted.append(chat_item)
        chat_samples: list[ChatSample] = tokenize_records(
            converted, source, settings, tokenizer, seed, inference, source_report
        )
        for chat in chat_samples:
            media = [media_by_message[id(m)] for m in chat.messages if id(m) in media_by_message]
            sample = MultimodalSample(
                chat.input_ids, chat.labels, chat.source, originals[id(chat.record)], media, chat.truncated
            )
            _check_spans(sample, tokenizer, settings)
            samples.append(sample)
        report.sources.append(source_report)
    if not samples:
        raise DataError(f"no usable record in the dataset: {report.summary()}")
    return samples, report
