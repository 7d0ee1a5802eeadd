"""The rows inference_rm scores, per dataset type (also read by validate): each output row without its
rewards, its source, how many sequences it has and how to store their scores, and the sequences."""

from __future__ import annotations

import logging
from typing import Any

from turbo.data.records import ChatRecord
from turbo.settings.datasets.chat import ChatDatasetSettings
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.datasets.rendering import ChatRenderSettings
from turbo.settings.datasets.rm import RmDatasetSettings as AnswersDatasetSettings
from turbo.settings.datasets.sampling import SamplingDatasetSettings

logger = logging.getLogger("turbo")

# (output row without rewards, its source, how many sequences it has, how to store their scores)
Scored = tuple[dict[str, Any], str, int, Any]


def _row(record: Any, source: str) -> dict[str, Any]:
    return {**record.model_dump(mode="json", exclude_none=True), "dataset_name": source}


def _pair_rows(settings: PairPreferencesDatasetSettings, tokenizer: Any, seed: int) -> tuple[list, list]:
    from turbo.data.pair_preferences import build_pair_samples

    samples, report = build_pair_samples(settings, tokenizer, seed=seed)
    logger.info("data: %s", report.summary())
    rows = [(_row(s.record.record, s.source), s.source, 2, _set_pair) for s in samples]
    sequences = [ids for s in samples for ids in (s.prompt_ids + s.chosen_ids, s.prompt_ids + s.rejected_ids)]
    return rows, sequences


def _set_pair(row: dict[str, Any], scores: list[float]) -> None:
    row["rewards"] = {"answer_w": scores[0], "answer_l": scores[1]}


def _chat_rows(settings: ChatDatasetSettings, tokenizer: Any, seed: int) -> tuple[list, list]:
    from turbo.data.conversation import encode_conversations, with_system_prompt
    from turbo.data.readers import read_jsonl, sample_source

    render = ChatRenderSettings(
        prompt_template=settings.prompt_template,
        max_tokens_count=settings.max_tokens_count,
        keep_end=settings.keep_end,
    )
    rows, conversations = [], []
    for source in settings.sources:
        for item in sample_source(read_jsonl(source.records_path, ChatRecord), source, seed):
            conversations.append((with_system_prompt(item.record.messages, source), item.where))
            rows.append((_row(item.record, source.name), source.name, 1, _set_chat))
    encoded = encode_conversations(conversations, render, tokenizer)
    logger.info("data: %d conversations, %d truncated", len(encoded), sum(e.truncated for e in encoded))
    return rows, [e.input_ids for e in encoded]


def _set_chat(row: dict[str, Any], scores: list[float]) -> None:
    row["reward"] = scores[0]


def _sampling_rows(settings: SamplingDatasetSettings, tokenizer: Any, seed: int) -> tuple[list, list]:
    from turbo.data.sampling import answer_sequences, read_sampling_records

    items, report = read_sampling_records(settings, seed)
    logger.info("data: %s", report.summary())
    sequences, truncated = answer_sequences(items, settings, tokenizer)
    if truncated:
        logger.info("%d of %d answers were truncated to max_tokens_count", truncated, len(sequences))
    rows = []
    for item in items:
        row = _row(item.record.record, item.source)
        row["dataset_name"] = item.record.record.dataset_name or item.source
        ids = [answer.id for answer in item.record.record.answers]
        rows.append((row, item.source, len(ids), _sampling_setter(ids)))
    return rows, sequences


def _sampling_setter(ids: list[str]) -> Any:
    def store(row: dict[str, Any], scores: list[float]) -> None:
        row["rewards"] = dict(zip(ids, scores, strict=True))

    return store


def rm_record_rows(settings: AnswersDatasetSettings, tokenizer: Any, seed: int) -> tuple[list, list]:
    """`rm` records: context + answer, scored once."""
    from turbo.data.answers import build_answer_samples

    samples, report = build_answer_samples(settings, tokenizer, seed)
    logger.info("data: %s", report.summary())
    rows = [(_row(sample.record, sample.source), sample.source, 1, _set_chat) for sample in samples]
    return rows, [sample.input_ids for sample in samples]


ROW_BUILDERS = {
    "pair_preferences": _pair_rows,
    "chat": _chat_rows,
    "sampling": _sampling_rows,
    "rm": rm_record_rows,
}
