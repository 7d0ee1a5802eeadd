"""The pair-preferences dataset: a context and two answers (chosen w, rejected l) -> token ids.

Both answers follow the very same prompt tokens (the context rendered once, then the bot's head);
a pair longer than max_tokens_count loses its earliest context messages, never an answer.
Records come as `{"id", "context", "answer_w", "answer_l", "precomputed_margin"}` or in the flat form
`{"prompt", "chosen", "rejected"}` (strings or message lists; without a prompt, the messages the two
conversations share are the context); a `score_margin` or `margin` field is the margin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from pydantic import Field, field_validator, model_validator

from turbo.data.conversation import render, special_ids, with_system_prompt
from turbo.data.parallel import tokenize_texts
from turbo.data.readers import Located, read_jsonl, sample_source
from turbo.data.records import ChatMessage, Record
from turbo.data.report import DatasetReport, SourceReport
from turbo.errors import DataError
from turbo.labels import IGNORE_INDEX
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings

MARGIN_ALIASES = ("score_margin", "margin")
IMAGE_KEYS = ("image", "images")
TOKENIZE_CHUNK = 512
S = TypeVar("S")


def _messages(value: Any, default_role: str) -> list[Any]:
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if isinstance(value, dict):
        return [value]
    return list(value) if isinstance(value, list) else [value]


def _flat_to_pair(data: dict[str, Any]) -> dict[str, Any]:
    """{"prompt", "chosen", "rejected"} -> {"context", "answer_w", "answer_l"}."""
    data = dict(data)
    missing = [key for key in ("chosen", "rejected") if key not in data]
    if missing:
        raise ValueError(f"the flat form needs 'chosen' and 'rejected' (missing: {', '.join(missing)})")
    context = _messages(data.pop("prompt"), "user") if "prompt" in data else []
    chosen, rejected = _messages(data.pop("chosen"), "bot"), _messages(data.pop("rejected"), "bot")
    if not context:  # implicit prompt: the shared start of both conversations
        shared = 0
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        context, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if len(chosen) != 1 or len(rejected) != 1:
        raise ValueError("'chosen' and 'rejected' must each be one answer (a string or one bot message)")
    return {**data, "context": context, "answer_w": chosen[0], "answer_l": rejected[0]}


def pair_forms(data: dict[str, Any]) -> dict[str, Any]:
    """The flat form and the margin aliases as {"context", "answer_w", "answer_l", "precomputed_margin"}."""
    if "chosen" in data or "rejected" in data or "prompt" in data:
        data = _flat_to_pair(data)
    aliases = [key for key in MARGIN_ALIASES if key in data]
    if aliases:
        if "precomputed_margin" in data or len(aliases) > 1:
            raise ValueError(f"set only one margin field (found {', '.join(aliases)}, precomputed_margin)")
        data = {**data, "precomputed_margin": data[aliases[0]]}
        del data[aliases[0]]
    return data


class PairPreferenceRecord(Record):
    id: str | None = None  # type: ignore[assignment]  (flat-form files often have none: file:line names it)
    context: list[ChatMessage] = Field(min_length=1)
    answer_w: ChatMessage
    answer_l: ChatMessage
    precomputed_margin: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _common_forms(cls, data: Any) -> Any:
        return pair_forms(data) if isinstance(data, dict) else data

    @field_validator("answer_w", "answer_l")
    @classmethod
    def _bot_answer(cls, answer: ChatMessage) -> ChatMessage:
        if answer.role != "bot":
            raise ValueError(f"an answer must be a bot message, got role '{answer.role}'")
        return answer


@dataclass(frozen=True)
class PairSample:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    margin: float | None
    source: str
    record: Located[PairPreferenceRecord]

    @property
    def name(self) -> str:
        return self.record.record.id or self.record.where

    def features(self) -> dict[str, Any]:
        features: dict[str, Any] = {
            "prompt_ids": self.prompt_ids,
            "chosen_ids": self.chosen_ids,
            "rejected_ids": self.rejected_ids,
        }
        if self.margin is not None:
            features["margin"] = self.margin
        return features


def check_margins(chosen: list[Located[Any]], settings: PairPreferencesDatasetSettings, source: str) -> None:
    """For a loss that reads a margin: every record has one, or the dataset's score_margin stands in."""
    if settings.score_margin is not None:
        return
    lacking = [item for item in chosen if item.record.precomputed_margin is None]
    if lacking:
        raise DataError(
            f"{lacking[0].where}: the loss reads a margin, but this record has no precomputed_margin "
            f"({len(lacking)} of {len(chosen)} sampled records in {source} have none)"
        )


def build_pairs(
    settings: PairPreferencesDatasetSettings,
    record_type: type[PairPreferenceRecord],
    seed: int,
    need_margin: bool,
    samples_of: Callable[[Any, list[Located[Any]], SourceReport], Iterable[S]],
) -> tuple[list[S], DatasetReport]:
    """Read and sample every source, and make its samples with `samples_of(source, sampled records, the
    source's report)`; raises DataError if nothing is usable, or if `need_margin` and a record has no
    margin. The text and the multimodal pair datasets share it."""
    samples: list[S] = []
    report = DatasetReport()
    for source in settings.sources:
        located = read_jsonl(source.records_path, record_type)
        chosen = sample_source(located, source, seed)
        if need_margin:
            check_margins(chosen, settings, source.name)
        source_report = SourceReport(
            source.name, str(source.records_path), read=len(located), sampled=len(chosen)
        )
        samples.extend(samples_of(source, chosen, source_report))
        report.sources.append(source_report)
    if not samples:
        raise DataError(f"no usable record in the dataset: {report.summary()}")
    return samples, report


def tokenize_in_chunks(
    records: list[Located[Any]],
    source: Any,
    settings: PairPreferencesDatasetSettings,
    tokenizer: Any,
    report: SourceReport,
) -> Iterator[PairSample]:
    """tokenize_pairs over `records`, TOKENIZE_CHUNK at a time (each chunk when the previous one is used)."""
    for offset in range(0, len(records), TOKENIZE_CHUNK):
        chunk = records[offset : offset + TOKENIZE_CHUNK]
        yield from tokenize_pairs(chunk, source.name, settings, tokenizer, report, source)


def build_pair_samples(
    settings: PairPreferencesDatasetSettings, tokenizer: Any, *, seed: int, need_margin: bool = False
) -> tuple[list[PairSample], DatasetReport]:
    """Read, sample and tokenise every source; raises DataError if nothing is usable, or if
    `need_margin` and a record has no margin."""

    def samples_of(source: Any, chosen: list[Located[Any]], report: SourceReport) -> Iterator[PairSample]:
        return tokenize_in_chunks(chosen, source, settings, tokenizer, report)

    return build_pairs(settings, PairPreferenceRecord, seed, need_margin, samples_of)


def tokenize_pairs(
    chunk: list[Located[PairPreferenceRecord]],
    name: str,
    settings: PairPreferencesDatasetSettings,
    tokenizer: Any,
    report: SourceReport,
    source: Any,
) -> list[PairSample]:
    """PairSamples of one chunk of records (the report counts the kept, truncated and dropped ones)."""
    start, end = special_ids(settings.chat_settings, tokenizer)
    budget = settings.chat_settings.max_tokens_count or 10**12
    texts: list[str] = []
    spans: list[tuple[Located[PairPreferenceRecord], int, int]] = []
    for item in chunk:
        if item.record.model_extra and any(key in item.record.model_extra for key in IMAGE_KEYS):
            report.drop(
                "has an image (this pipeline reads text only; train_multimodal_dpo reads it)",
                item.record.id or item.where,
            )
            continue
        context = with_system_prompt(item.record.context, source)
        segments_w, _ = render(
            [*context, item.record.answer_w], settings.chat_settings, tokenizer, item.where
        )
        segments_l, _ = render(
            [*context, item.record.answer_l], settings.chat_settings, tokenizer, item.where
        )
        if segments_w[:-1] != segments_l[:-1] or segments_w[-1][0] != segments_l[-1][0]:
            raise DataError(f"{item.where}: the template renders the shared context differently per answer")
        first = len(texts)
        texts += [text for segment in segments_w for text in segment] + [segments_l[-1][1]]
        spans.append((item, first, len(segments_w)))
    ids = tokenize_texts(tokenizer, texts, settings.dataset_num_proc)
    samples = []
    for item, first, count in spans:
        pieces = [ids[first + 2 * i] + ids[first + 2 * i + 1] for i in range(count - 1)]
        head = ids[first + 2 * (count - 1)]
        answer_w, answer_l = ids[first + 2 * count - 1] + end, ids[first + 2 * count] + end
        cut = settings.max_target_length  # answers keep their start
        answers_cut = cut is not None and max(len(answer_w), len(answer_l)) > cut
        if cut is not None:
            answer_w, answer_l = answer_w[:cut], answer_l[:cut]
        fixed = len(start) + len(head) + max(len(answer_w), len(answer_l))
        kept = len(pieces)
        while kept and fixed + sum(len(piece) for piece in pieces[len(pieces) - kept :]) > budget:
            kept -= 1
        record_name = item.record.id or item.where
        if fixed > budget:
            report.drop("an answer is longer than max_tokens_count", record_name)
            continue
        if kept == 0:
            report.drop("no context message fits max_tokens_count", record_name)
            continue
        body = [token for piece in pieces[len(pieces) - kept :] for token in piece] + head
        limit = settings.max_prompt_length  # the prompt keeps its end (the latest context and the bot's head)
        prompt_cut = limit is not None and len(start) + len(body) > limit
        if limit is not None:
            if len(start) + len(head) > limit:
                report.drop("the answer's head alone is longer than max_prompt_length", record_name)
                continue
            body = body[max(0, len(start) + len(body) - limit) :]
        prompt = start + body
        truncated = kept < len(pieces) or prompt_cut or answers_cut
        report.keep(len(prompt) + max(len(answer_w), len(answer_l)), truncated)
        margin = item.record.precomputed_margin
        margin = settings.score_margin if margin is None else margin  # the record's own margin wins
        samples.append(PairSample(prompt, answer_w, answer_l, margin, name, item))
    return samples


class PairCollator:
    """Right-padded [chosen rows; rejected rows] with labels on the answers only, the margins, and
    precomputed reference log-probs when the features carry them. `flat`: the rows one after another in
    a single row with no padding (turbo.data.packing.FlatCollator: position ids restarting per row and
    the rows' offsets, for attention that keeps each row to itself). `shared`: one row with each pair's
    prompt once, its two answers after it (turbo.data.shared_prompts; scored by token_logps)."""

    def __init__(self, pad_token_id: int, flat: bool = False, shared: bool = False) -> None:
        self.pad_token_id = pad_token_id
        self.flat = flat
        self.shared = shared

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        sequences = [(f["prompt_ids"], f[key]) for key in ("chosen_ids", "rejected_ids") for f in features]
        if self.shared:
            from turbo.data.shared_prompts import SharedPrompts

            prompts, answers = [prompt for prompt, _ in sequences], [answer for _, answer in sequences]
            return self._extras({"shared_prompts": SharedPrompts.build(prompts, answers, "cpu")}, features)
        if self.flat:
            from turbo.data.packing import FlatCollator

            batch = FlatCollator()(
                [{"input_ids": p + a, "labels": [IGNORE_INDEX] * len(p) + a} for p, a in sequences]
            )
            batch.pop("use_cache")
            return self._extras(batch, features)
        width = max(len(prompt) + len(answer) for prompt, answer in sequences)
        input_ids = torch.full((len(sequences), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(sequences), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, (prompt, answer) in enumerate(sequences):
            length = len(prompt) + len(answer)
            input_ids[row, :length] = torch.tensor(prompt + answer)
            labels[row, len(prompt) : length] = torch.tensor(answer)
            attention_mask[row, :length] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        return self._extras(batch, features)

    @staticmethod
    def _extras(batch: dict[str, Any], features: list[dict[str, Any]]) -> dict[str, Any]:
        for key in ("margin", "ref_chosen_logps", "ref_rejected_logps"):
            if all(key in f for f in features):
                batch[key] = torch.tensor([f[key] for f in features], dtype=torch.float32)
        return batch
