"""The chat dataset: JSONL conversations -> token ids and labels, with one report of what was dropped."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from turbo.data.parallel import tokenize_texts
from turbo.data.readers import Located, read_jsonl, sample_source
from turbo.data.records import ChatMessage, ChatRecord
from turbo.data.report import DatasetReport, SourceReport
from turbo.data.templating import Segment, render_with_chat_template, render_with_template
from turbo.errors import DataError
from turbo.labels import IGNORE_INDEX
from turbo.settings.datasets import ChatDatasetSettings, DatasetSourceSettings

TOKENIZE_CHUNK = 512


@dataclass(frozen=True)
class ChatSample:
    input_ids: list[int]
    labels: list[int]
    source: str
    record: Located[ChatRecord]
    messages: list[ChatMessage]
    truncated: bool

    def features(self) -> dict[str, list[int]]:
        return {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "attention_mask": [1] * len(self.input_ids),
        }


def build_chat_samples(
    settings: ChatDatasetSettings, tokenizer: Any, *, seed: int, inference: bool = False
) -> tuple[list[ChatSample], DatasetReport]:
    """Read, sample, render and tokenise every source. Raises DataError if nothing is usable."""
    samples: list[ChatSample] = []
    report = DatasetReport()
    for source in settings.sources:
        located = read_jsonl(source.records_path, ChatRecord)
        chosen = sample_source(located, source, seed)
        source_report = SourceReport(
            source.name, str(source.records_path), read=len(located), sampled=len(chosen)
        )
        samples.extend(tokenize_records(chosen, source, settings, tokenizer, seed, inference, source_report))
        report.sources.append(source_report)
    if not samples:
        raise DataError(f"no usable record in the dataset: {report.summary()}")
    return samples, report


def _conversation(record: ChatRecord, source: DatasetSourceSettings) -> list[ChatMessage]:
    messages = list(record.messages)
    if source.system_prompt is not None and messages[0].role != "system":
        messages.insert(0, ChatMessage(role="system", content=source.system_prompt))
    return messages


def _random_cut(messages: list[ChatMessage], rng: random.Random) -> list[ChatMessage]:
    bot_positions = [i for i, m in enumerate(messages) if m.role == "bot"]
    return messages[: rng.choice(bot_positions) + 1] if bot_positions else messages


def tokenize_records(
    records: list[Located[ChatRecord]],
    source: DatasetSourceSettings,
    settings: ChatDatasetSettings,
    tokenizer: Any,
    seed: int,
    inference: bool,
    report: SourceReport,
) -> list[ChatSample]:
    """Render, truncate and tokenise records already read from `source` (other dataset types build on it).

    Each sample's `messages` are the very message objects of its record that it kept.
    """
    rng = random.Random(f"{seed}:{source.name}:cut")
    use_template = settings.prompt_template is not None
    start = [tokenizer.bos_token_id] if use_template and tokenizer.bos_token_id is not None else []
    end = (
        [tokenizer.eos_token_id]
        if use_template and not inference and tokenizer.eos_token_id is not None
        else []
    )
    samples: list[ChatSample] = []
    progress = tqdm(total=len(records), desc=f"tokenising {source.name}", disable=len(records) < 5000)
    for offset in range(0, len(records), TOKENIZE_CHUNK):
        chunk = records[offset : offset + TOKENIZE_CHUNK]
        rendered = []
        for item in chunk:
            messages = _conversation(item.record, source)
            if inference:
                while messages and messages[-1].role == "bot":
                    messages.pop()
            elif settings.random_cut:
                messages = _random_cut(messages, rng)
            if settings.prompt_template is not None:
                segments, prefix = render_with_template(messages, settings.prompt_template, item.where)
            else:
                segments, prefix = render_with_chat_template(messages, tokenizer, item.where)
            rendered.append((item, messages, segments, prefix))
        texts = [text for _, _, segments, prefix in rendered for segment in segments for text in segment]
        texts += [prefix for *_, prefix in rendered]
        ids = tokenize_texts(tokenizer, texts, settings.dataset_num_proc)
        cursor = 0
        prefixes = ids[len(ids) - len(rendered) :]
        for (item, messages, segments, _), prefix_ids in zip(rendered, prefixes, strict=True):
            pieces = [(ids[cursor + 2 * i], ids[cursor + 2 * i + 1]) for i in range(len(segments))]
            cursor += 2 * len(segments)
            sample = _assemble(
                item, source.name, messages, pieces, prefix_ids, start, end, settings, inference
            )
            if isinstance(sample, str):
                report.drop(sample, item.record.id)
            else:
                report.keep(len(sample.input_ids), sample.truncated)
                samples.append(sample)
        progress.update(len(chunk))
    progress.close()
    return samples


def _trainable(messages: list[ChatMessage], settings: ChatDatasetSettings) -> list[bool]:
    flags = [not m.disable_loss and (m.role == "bot" or not settings.only_answer_loss) for m in messages]
    if settings.only_last_replica_loss:
        bots = [i for i, m in enumerate(messages) if m.role == "bot" and flags[i]]
        flags = [i == bots[-1] if bots else False for i in range(len(messages))]
    return flags


def _fit(lengths: list[int], budget: int, keep_end: bool) -> tuple[int, int]:
    """The widest run of whole messages whose lengths fit `budget`: [first, last)."""
    total, first, last = 0, 0, 0
    order = range(len(lengths) - 1, -1, -1) if keep_end else range(len(lengths))
    for index in order:
        if total + lengths[index] > budget:
            break
        total += lengths[index]
        first, last = (index, len(lengths)) if keep_end else (0, index + 1)
    return first, last


def _assemble(
    item: Located[ChatRecord],
    source: str,
    messages: list[ChatMessage],
    pieces: list[tuple[list[int], list[int]]],
    prefix_ids: list[int],
    start: list[int],
    end: list[int],
    settings: ChatDatasetSettings,
    inference: bool,
) -> ChatSample | str:
    """A sample, or the reason the record cannot be used."""
    if not messages:
        return "nothing to answer (only bot messages)" if inference else "no messages"
    lengths = [len(head) + len(body) for head, body in pieces]
    tail = prefix_ids if inference else end
    budget = (settings.max_tokens_count or 10**12) - len(start) - len(tail)
    first, last = _fit(lengths, budget, settings.keep_end)
    truncated = (first, last) != (0, len(messages))
    if last <= first or (inference and truncated and not settings.keep_end):
        return "longer than max_tokens_count"  # a prompt cut at its end would answer the wrong message
    if not inference:
        trainable = _trainable(messages[first:last], settings)
        while last > first and not trainable[last - first - 1]:
            last -= 1  # a sample ends with its last trained message
        if last <= first:
            return "no trainable token after truncation" if truncated else "no trainable token"
    kept = messages[first:last]
    flags = [False] * len(kept) if inference else _trainable(kept, settings)
    input_ids, labels = list(start), [IGNORE_INDEX] * len(start)
    for (head, body), trained in zip(pieces[first:last], flags, strict=True):
        input_ids += head + body
        head_trained = trained and not settings.only_answer_loss  # role tags train only with full loss
        labels += (head if head_trained else [IGNORE_INDEX] * len(head)) + (
            body if trained else [IGNORE_INDEX] * len(body)
        )
    input_ids += tail
    labels += list(tail) if not inference and flags[-1] else [IGNORE_INDEX] * len(tail)
    return ChatSample(input_ids, labels, source, item, kept, truncated)


def marked_text(input_ids: Sequence[int], labels: Sequence[int], tokenizer: Any) -> str:
    """The decoded ids with the spans that carry a loss in [[...]] (the rest is masked)."""
    out: list[str] = []
    run: list[int] = []
    trained_run = False
    for token, label in [*zip(input_ids, labels, strict=True), (None, None)]:
        trained = label is not None and label != IGNORE_INDEX
        if token is None or (run and trained != trained_run):
            text = tokenizer.decode(run)
            out.append(f"[[{text}]]" if trained_run else text)
            run = []
        if token is not None:
            run.append(token)
            trained_run = trained
    return "".join(out)


def segments_preview(sample: ChatSample, tokenizer: Any) -> str:
    """The sample's text with trained spans in [[...]], so a masking mistake is visible."""
    return marked_text(sample.input_ids, sample.labels, tokenizer)


__all__ = [
    "IGNORE_INDEX",
    "ChatSample",
    "Segment",
    "build_chat_samples",
    "segments_preview",
    "tokenize_records",
]
