"""Turning chat messages into text segments: a prompt template or the tokenizer's chat template.

Each message becomes a (head, body) pair of strings. The head is the role tag (never trained);
the body is the content plus the suffix (trained when the message is a trained bot turn).
"""

from __future__ import annotations

from typing import Any

from turbo.data.records import ChatMessage
from turbo.errors import DataError
from turbo.settings.datasets import ChatPromptTemplate

Segment = tuple[str, str]

_HF_ROLES = {"bot": "assistant", "user": "user", "system": "system"}


def render_with_template(
    messages: list[ChatMessage], template: ChatPromptTemplate, where: str
) -> tuple[list[Segment], str]:
    """Segments per message and the generation prefix (the bot's head)."""
    segments = []
    for message in messages:
        if message.role not in template.role_tag_mapping:
            raise DataError(
                f"{where}: role '{message.role}' is not in prompt_template.role_tag_mapping "
                f"(it has: {', '.join(template.role_tag_mapping)})"
            )
        head = template.prefix_template.format(role=template.role_tag_mapping[message.role])
        segments.append((head, message.content + template.suffix_template))
    if "bot" not in template.role_tag_mapping:
        raise DataError("prompt_template.role_tag_mapping has no 'bot' role to generate or train on")
    return segments, template.prefix_template.format(role=template.role_tag_mapping["bot"])


def _apply(
    tokenizer: Any, messages: list[ChatMessage], add_generation_prompt: bool = False, where: str = ""
) -> str:
    from jinja2 import TemplateError

    conversation = [{"role": _HF_ROLES[m.role], "content": m.content} for m in messages]
    if not conversation:
        return ""
    try:
        return tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except TemplateError as exc:  # e.g. "Conversation roles must alternate user/assistant/..."
        raise DataError(f"{where}: the tokenizer's chat template refuses this conversation: {exc}") from None


EXACT_MESSAGES = 8  # conversations up to this long are rendered prefix by prefix
MAX_PREFIX_RENDERED = 2000  # beyond this, prefix-by-prefix rendering (quadratic) is refused


def render_with_chat_template(
    messages: list[ChatMessage], tokenizer: Any, where: str
) -> tuple[list[Segment], str]:
    """Segments from the tokenizer's chat template.

    Short conversations are rendered prefix by prefix (exact for any template). Long ones are
    rendered once with a marker for each content, the per-role text around a message learned from
    the first messages, and the result checked against the real rendering: linear time. A template
    for which that check fails is rendered prefix by prefix (quadratic), up to MAX_PREFIX_RENDERED
    messages.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("the tokenizer has no chat template; set prompt_template in the dataset settings")
    if len(messages) > EXACT_MESSAGES:
        linear = _render_linear(messages, tokenizer, where)
        if linear is not None:
            return linear
        if len(messages) > MAX_PREFIX_RENDERED:
            raise DataError(
                f"{where}: {len(messages)} messages, and the tokenizer's chat template cannot be split "
                f"into messages in linear time (at most {MAX_PREFIX_RENDERED} messages are rendered "
                "prefix by prefix); set prompt_template in the dataset settings or split the record"
            )
    return _render_by_prefixes(messages, tokenizer, where)


def _render_by_prefixes(messages: list[ChatMessage], tokenizer: Any, where: str) -> tuple[list[Segment], str]:
    segments = []
    rendered = ""
    for index in range(len(messages)):
        with_prompt = _apply(tokenizer, messages[:index], add_generation_prompt=True, where=where)
        full = _apply(tokenizer, messages[: index + 1], where=where)
        if not full.startswith(rendered):
            raise DataError(
                f"{where}: the tokenizer's chat template does not render messages incrementally; "
                "set prompt_template in the dataset settings"
            )
        text = full[len(rendered) :]
        head = ""
        if messages[index].role == "bot" and with_prompt.startswith(rendered):
            generation_prefix = with_prompt[len(rendered) :]
            if text.startswith(generation_prefix):
                head = generation_prefix
        segments.append((head, text[len(head) :]))
        rendered = full
    generation_prefix = _apply(tokenizer, messages, add_generation_prompt=True, where=where)[len(rendered) :]
    return segments, generation_prefix


def _marker(index: int) -> str:
    return f"\ue000{index}\ue001"  # private-use characters: never in a template


def _render_linear(
    messages: list[ChatMessage], tokenizer: Any, where: str
) -> tuple[list[Segment], str] | None:
    """The segments of `_render_by_prefixes` in linear time, or None where the shortcut does not hold."""
    marked = [ChatMessage(role=m.role, content=_marker(i)) for i, m in enumerate(messages)]
    learned, _ = _render_by_prefixes(marked[:EXACT_MESSAGES], tokenizer, where)
    heads: dict[str, str] = {}
    tails: dict[str, str] = {}
    for index, (head, body) in enumerate(learned[1:], start=1):  # the first message may differ
        role, tail = marked[index].role, body.partition(_marker(index))[2]
        if heads.setdefault(role, head) != head or tails.setdefault(role, tail) != tail:
            return None
    if any(m.role not in tails for m in messages[1:]):
        return None
    text = _apply(tokenizer, marked, where=where)
    segments = list(_real_segments(learned[:1], messages[:1]))
    cursor = len(learned[0][0]) + len(learned[0][1])
    if not text.startswith(learned[0][0] + learned[0][1]):
        return None
    for index in range(1, len(messages)):
        role = messages[index].role
        marker = _marker(index)
        end = text.find(marker, cursor)
        if end < 0:
            return None
        before = text[cursor:end]
        after_start = end + len(marker)
        tail = tails[role]
        if text[after_start : after_start + len(tail)] != tail or not before.startswith(heads[role]):
            return None
        head = heads[role]
        segments.append((head, before[len(head) :] + messages[index].content + tail))
        cursor = after_start + len(tail)
    if cursor != len(text):
        return None
    full = _apply(tokenizer, messages, where=where)
    if "".join(head + body for head, body in segments) != full:
        return None
    return segments, _apply(tokenizer, messages, add_generation_prompt=True, where=where)[len(full) :]


def _real_segments(marked: list[Segment], messages: list[ChatMessage]) -> list[Segment]:
    return [
        (head, body.replace(_marker(index), message.content, 1))
        for index, ((head, body), message) in enumerate(zip(marked, messages, strict=True))
    ]
