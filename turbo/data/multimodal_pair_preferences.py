"""Pair preferences with images: a prompt with media and two text answers -> token ids and media items.

Records come as `{"prompt", "chosen", "rejected", "image" | "images"}` (each image goes where its
`<image>` marker is in the prompt, the rest open the first user message, as in the multimodal dataset)
or as `{"context": [messages, with image messages {"role", "type": "image", "content"}], "answer_w",
"answer_l"}`. Media messages become their token span (turbo.data.multimodal) and the pair is
tokenised by the pair-preferences dataset, so both rows share the prompt tokens and its media.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from turbo.data.multimodal import (
    MediaChecker,
    MultimodalMessage,
    MultimodalRecord,
    convert_media,
    from_llava,
    modality_tokens,
)
from turbo.data.multimodal_batches import read_media, stack_media
from turbo.data.pair_preferences import (
    IMAGE_KEYS,
    PairCollator,
    PairPreferenceRecord,
    PairSample,
    build_pairs,
    pair_forms,
    tokenize_in_chunks,
)
from turbo.data.readers import Located
from turbo.data.report import DatasetReport, SourceReport
from turbo.errors import DataError
from turbo.media import MediaItem
from turbo.settings.datasets.multimodal_pair_preferences import MultimodalPairPreferencesDatasetSettings


def with_images(context: list[Any], images: Any) -> list[dict[str, Any]]:
    """Text context messages with the images placed at their <image> markers (the rest first)."""
    turns = []
    for message in context:
        if not isinstance(message, dict) or not {"role", "content"} <= set(message):
            raise ValueError("each context message needs 'role' and 'content'")
        if message.get("type", "text") != "text":
            raise ValueError("give the images either as image messages or in 'image'/'images', not both")
        turns.append({"from": message["role"], "value": message["content"]})
    return from_llava({"image": images, "conversations": turns})["messages"]


class MultimodalPairRecord(PairPreferenceRecord):
    context: list[MultimodalMessage] = Field(min_length=1)  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _common_forms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        keys = [key for key in IMAGE_KEYS if key in data]
        if len(keys) > 1:
            raise ValueError("set 'image' or 'images', not both")
        images = data[keys[0]] if keys else None
        data = pair_forms({key: value for key, value in data.items() if key not in IMAGE_KEYS})
        if images is not None:
            data["context"] = with_images(list(data.get("context") or []), images)
        return data


@dataclass(frozen=True)
class MultimodalPairSample(PairSample):
    media: list[MediaItem]  # the prompt's media, in the order of their spans

    def features(self) -> dict[str, Any]:
        return {**super().features(), "media": self.media}


def _as_text_pair(
    item: Located[MultimodalPairRecord],
    settings: MultimodalPairPreferencesDatasetSettings,
    root: Path,
    readers: dict[str, MediaChecker],
) -> tuple[Located[PairPreferenceRecord], list[MediaItem]]:
    """The pair with each media message of its context replaced by the media's token span."""
    record = item.record
    as_chat = MultimodalRecord(id=record.id or item.where, messages=record.context)
    media_by_message: dict[int, MediaItem] = {}
    chat, _ = convert_media(
        Located(as_chat, item.path, item.line, item.indexed), settings, root, readers, media_by_message
    )
    context = chat.record.messages
    pair = PairPreferenceRecord(
        id=record.id,
        context=context,
        answer_w=record.answer_w,
        answer_l=record.answer_l,
        precomputed_margin=record.precomputed_margin,
    )
    media = [media_by_message[id(message)] for message in context if id(message) in media_by_message]
    return Located(pair, item.path, item.line, item.indexed), media


def _kept_media(
    sample: PairSample,
    media: list[MediaItem],
    settings: MultimodalPairPreferencesDatasetSettings,
    tokenizer: Any,
) -> list[MediaItem]:
    """The media whose spans are still in the prompt after truncation (the latest ones: the earliest
    context messages go first), checked span by span; the answers hold no modality token."""
    start, end = (
        tokenizer.convert_tokens_to_ids(t)
        for t in (settings.start_modality_token, settings.end_modality_token)
    )
    token_ids = {m: tokenizer.convert_tokens_to_ids(t) for m, t in settings.modality_token_mapping.items()}
    span_ids = {start, end, *token_ids.values()}
    where = sample.record.where
    if any(token in span_ids for token in (*sample.chosen_ids, *sample.rejected_ids)):
        raise DataError(
            f"{where}: an answer holds a modality token ({', '.join(modality_tokens(settings))}); remove it"
        )
    kept = media[len(media) - sample.prompt_ids.count(start) :] if start in sample.prompt_ids else []
    expected: list[int] = []
    for item in kept:
        expected += [start, *[token_ids[item.modality]] * settings.n_modality_embeddings, end]
    if [token for token in sample.prompt_ids if token in span_ids] != expected:
        raise DataError(
            f"{where}: max_prompt_length cuts through a media span, or the text holds a modality token "
            f"({', '.join(modality_tokens(settings))}) outside a media message; raise max_prompt_length "
            "or remove the token"
        )
    return kept


def build_multimodal_pair_samples(
    settings: MultimodalPairPreferencesDatasetSettings,
    tokenizer: Any,
    readers: dict[str, MediaChecker],
    *,
    seed: int,
    need_margin: bool = False,
) -> tuple[list[MultimodalPairSample], DatasetReport]:
    """Read, check media, render and tokenise every source. The tokenizer must know the span tokens."""

    def samples_of(
        source: Any, chosen: list[Located[Any]], source_report: SourceReport
    ) -> Iterator[MultimodalPairSample]:
        root = Path(settings.media_root or Path(source.records_path).parent)
        pairs, media_of = [], {}
        for item in chosen:
            pair, media = _as_text_pair(item, settings, root, readers)
            if settings.max_media_per_sample is not None and len(media) > settings.max_media_per_sample:
                source_report.drop(
                    f"more than {settings.max_media_per_sample} media items", item.record.id or item.where
                )
                continue
            media_of[id(pair)] = media
            pairs.append(pair)
        for sample in tokenize_in_chunks(pairs, source, settings, tokenizer, source_report):
            kept = _kept_media(sample, media_of[id(sample.record)], settings, tokenizer)
            yield MultimodalPairSample(*(getattr(sample, f) for f in PAIR_FIELDS), media=kept)

    return build_pairs(settings, MultimodalPairRecord, seed, need_margin, samples_of)


PAIR_FIELDS = ("prompt_ids", "chosen_ids", "rejected_ids", "margin", "source", "record")


class MultimodalPairCollator:
    """PairCollator's [chosen rows; rejected rows] plus the media of each pair, read here (so that
    features stay light and reference log-probs can be precomputed over them), once per pair and
    given to both of its rows."""

    def __init__(self, pad_token_id: int, readers: dict[str, Any]) -> None:
        self.pairs = PairCollator(pad_token_id)
        self.readers = readers

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = dict(self.pairs(features))
        media = [read_media(feature["media"], self.readers) for feature in features]
        batch["modality_inputs"] = stack_media(media + media)
        return batch
