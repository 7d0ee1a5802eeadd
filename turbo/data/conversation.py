"""Token ids of whole conversations, for dataset types that read chat messages but train no tokens.

Classification and reward scoring see a conversation as one sequence: every message rendered with
the prompt template (or the tokenizer's chat template), tokenised message by message as the chat
dataset does, then cut to max_tokens_count (keep_end cuts from the start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turbo.data.records import ChatMessage
from turbo.data.templating import Segment, render_with_chat_template, render_with_template
from turbo.settings.datasets.base import DatasetSourceSettings
from turbo.settings.datasets.rendering import ChatRenderSettings

TOKENIZE_CHUNK = 512


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    truncated: bool


def with_system_prompt(messages: list[ChatMessage], source: DatasetSourceSettings) -> list[ChatMessage]:
    """The source's system prompt first, unless the conversation already starts with a system message."""
    messages = list(messages)
    if source.system_prompt is not None and (not messages or messages[0].role != "system"):
        messages.insert(0, ChatMessage(role="system", content=source.system_prompt))
    return messages


def render(
    messages: list[ChatMessage], settings: ChatRenderSettings, tokenizer: Any, where: str
) -> tuple[list[Segment], str]:
    """(head, body) text per message and the bot's generation prefix."""
    if settings.prompt_template is not None:
        return render_with_template(messages, settings.prompt_template, where)
    return render_with_chat_template(messages, tokenizer, where)


def special_ids(settings: ChatRenderSettings, tokenizer: Any) -> tuple[list[int], list[int]]:
    """bos and eos around a conversation: added with a prompt template (a chat template has its own)."""
    if settings.prompt_template is None:
        return [], []
    start = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    end = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return start, end


def cut(ids: list[int], max_tokens: int | None, keep_end: bool) -> Encoded:
    if max_tokens is None or len(ids) <= max_tokens:
        return Encoded(ids, False)
    return Encoded(ids[-max_tokens:] if keep_end else ids[:max_tokens], True)


def encode_conversations(
    conversations: list[tuple[list[ChatMessage], str]], settings: ChatRenderSettings, tokenizer: Any
) -> list[Encoded]:
    """Token ids of each (messages, where) conversation, in order, tokenised in chunks."""
    start, end = special_ids(settings, tokenizer)
    encoded: list[Encoded] = []
    for offset in range(0, len(conversations), TOKENIZE_CHUNK):
        chunk = conversations[offset : offset + TOKENIZE_CHUNK]
        texts_per_item = [
            [text for segment in render(messages, settings, tokenizer, where)[0] for text in segment]
            for messages, where in chunk
        ]
        flat = [text for texts in texts_per_item for text in texts]
        ids = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
        cursor = 0
        for texts in texts_per_item:
            body = [token for piece in ids[cursor : cursor + len(texts)] for token in piece]
            cursor += len(texts)
            encoded.append(cut(start + body + end, settings.max_tokens_count, settings.keep_end))
    return encoded
