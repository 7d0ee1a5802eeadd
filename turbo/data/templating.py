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


def _apply(tokenizer: Any, messages: list[ChatMessage], add_generation_prompt: bool = False) -> str:
    conversation = [{"role": _HF_ROLES[m.role], "content": m.content} for m in messages]
    if not conversation:
        return ""
    return tokenizer.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def render_with_chat_template(
    messages: list[ChatMessage], tokenizer: Any, where: str
) -> tuple[list[Segment], str]:
    """Segments from the tokenizer's chat template, found by rendering message prefixes."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("the tokenizer has no chat template; set prompt_template in the dataset settings")
    segments = []
    rendered = ""
    for index in range(len(messages)):
        with_prompt = _apply(tokenizer, messages[:index], add_generation_prompt=True)
        full = _apply(tokenizer, messages[: index + 1])
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
    generation_prefix = _apply(tokenizer, messages, add_generation_prompt=True)[len(rendered) :]
    return segments, generation_prefix
