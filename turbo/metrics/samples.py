"""EvalSamples from what each method reads: chat samples, classification samples, inference outputs."""

from __future__ import annotations

from typing import Any

from turbo.data.records import ChatMessage
from turbo.metrics.base import EvalSample


def reference_answer(messages: list[ChatMessage]) -> str | None:
    """The record's own answer: its last message when that is the bot's."""
    return messages[-1].content if messages and messages[-1].role == "bot" else None


def _text_messages(messages: list[Any]) -> list[ChatMessage]:
    """The text messages of a record before its answer (media messages left out)."""
    kept = [m for m in messages if getattr(m, "type", "text") == "text"]
    while kept and kept[-1].role == "bot":
        kept.pop()
    return [ChatMessage(role=m.role, content=m.content) for m in kept]


def chat_eval_samples(samples: list[Any]) -> list[EvalSample]:
    """From chat (or multimodal) samples built for inference (their prompt ends before the answer)."""
    return [
        EvalSample(
            source=sample.source,
            row=sample.record.record.model_dump(mode="json", exclude_none=True),
            messages=list(getattr(sample, "messages", None) or _text_messages(sample.record.record.messages)),
            reference=reference_answer(sample.record.record.messages),
            prompt_ids=list(sample.input_ids),
            payload=sample,
        )
        for sample in samples
    ]


def pair_eval_samples(samples: list[Any]) -> list[EvalSample]:
    """From pair samples: the reward model scores both answers (prompt_ids: prompt + chosen)."""
    return [
        EvalSample(
            source=sample.source,
            row=sample.record.record.model_dump(mode="json", exclude_none=True),
            prompt_ids=list(sample.prompt_ids) + list(sample.chosen_ids),
            payload=sample,
        )
        for sample in samples
    ]


def classification_eval_samples(samples: list[Any]) -> list[EvalSample]:
    """The reference is the record's label (as text), which `accuracy` compares with the prediction."""
    return [
        EvalSample(
            source=sample.source,
            row=sample.record.record.model_dump(mode="json", exclude_none=True),
            reference=str(sample.label) if sample.label is not None else None,
            prompt_ids=list(sample.input_ids),
            payload=sample,
        )
        for sample in samples
    ]


def output_eval_samples(rows: list[dict[str, Any]], source: str) -> tuple[list[EvalSample], list[list[str]]]:
    """An inference output (inference_chat / _multimodal / _rag rows: the record and its `answers`); the
    text messages of multimodal records are kept, their media left out."""
    samples, answers = [], []
    for row in rows:
        messages = [
            ChatMessage(role=m["role"], content=m["content"])
            for m in row.get("messages", [])
            if isinstance(m, dict) and m.get("type", "text") == "text"
        ]
        reference = reference_answer(messages)
        while messages and messages[-1].role == "bot":
            messages.pop()
        kept = {key: value for key, value in row.items() if key != "answers"}
        samples.append(
            EvalSample(
                source=str(row.get("dataset_name", source)), row=kept, messages=messages, reference=reference
            )
        )
        answers.append([str(answer.get("content", "")) for answer in row.get("answers", [])])
    return samples, answers
