"""How a tool call is written and how its result is appended (tool_loop_settings.tool_call_format).

tags: the policy writes <NAME>argument</NAME>; the result is appended as <result>...</result>.
chat_template: the policy writes <tool_call>{"name": ..., "arguments": ...}</tool_call> (the call parsed as
JSON); the result is appended as a `tool` message rendered by the tokenizer's chat template.
Results are tokenised once, here; the policy's own tokens are never re-tokenised."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from turbo.errors import SettingsError

SENTINEL = "\x00TURBO_TOOL_RESULT\x00"


@dataclass(frozen=True)
class Call:
    """A call found in the policy's text: the tool's name, its argument text, or why it cannot run."""

    name: str
    argument: str
    problem: str | None = None


@dataclass(frozen=True)
class TagsFormat:
    names: tuple[str, ...]

    @property
    def stops(self) -> list[str]:
        """Where generation stops: the closing tag of every tool."""
        return [f"</{name}>" for name in self.names]

    def closes(self, text: str) -> bool:
        return any(f"</{name}>" in text for name in self.names)

    def call(self, text: str) -> Call | None:
        """The first call closed in `text` (None: no closing tag)."""
        found = [(text.find(f"</{name}>"), name) for name in self.names if f"</{name}>" in text]
        if not found:
            return None
        end, name = min(found)
        opening = text.rfind(f"<{name}>", 0, end)
        if opening < 0:
            return Call(name, "", f"no <{name}> before </{name}>")
        return Call(name, text[opening + len(name) + 2 : end].strip())

    def result_ids(self, tokenizer: Any, text: str) -> list[int]:
        return list(tokenizer(f"<result>{text}</result>", add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class ChatTemplateFormat:
    names: tuple[str, ...]
    before: str  # the template's text before a tool message's content (after the assistant's turn)
    after: str  # after it, up to the next assistant turn's header
    stops = ("</tool_call>",)

    def closes(self, text: str) -> bool:
        return "</tool_call>" in text

    def call(self, text: str) -> Call | None:
        end = text.find("</tool_call>")
        if end < 0:
            return None
        opening = text.rfind("<tool_call>", 0, end)
        body = text[opening + len("<tool_call>") : end] if opening >= 0 else ""
        try:
            parsed = json.loads(body)
        except ValueError:
            return Call("tool_call", "", f"not a JSON tool call: {body.strip()[:200]!r}")
        if not isinstance(parsed, dict) or not isinstance(parsed.get("name"), str):
            return Call("tool_call", "", 'a tool call is {"name": ..., "arguments": ...}')
        name = parsed["name"]
        if name not in self.names:
            return Call(name, "", f"no tool named {name!r}; tools: {', '.join(self.names)}")
        arguments = parsed.get("arguments", "")
        if isinstance(arguments, dict) and len(arguments) == 1:
            arguments = next(iter(arguments.values()))
        return Call(name, arguments if isinstance(arguments, str) else json.dumps(arguments))

    def result_ids(self, tokenizer: Any, text: str) -> list[int]:
        return list(tokenizer(self.before + text + self.after, add_special_tokens=False)["input_ids"])


def template_parts(tokenizer: Any) -> tuple[str, str]:
    """The text a chat template writes around a `tool` message that follows an assistant turn (the end of
    that turn first: generation stopped at the call), up to the next assistant header.
    SettingsError when the template has no tool messages."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if "tool" not in template:
        raise SettingsError(
            "tool_loop_settings.tool_call_format: chat_template needs a chat template with `tool` messages; "
            "this tokenizer's has none; use tool_call_format: tags"
        )
    answer = "\x00TURBO_ANSWER\x00"
    base = [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}]
    try:
        head = tokenizer.apply_chat_template(base, tokenize=False)
        full = tokenizer.apply_chat_template(
            [*base, {"role": "tool", "content": SENTINEL}], tokenize=False, add_generation_prompt=True
        )
    except Exception as exc:  # noqa: BLE001 - a template that cannot render tool messages
        raise SettingsError(
            f"tool_loop_settings.tool_call_format: the chat template cannot render a tool message: {exc}"
        ) from exc
    if not full.startswith(head) or SENTINEL not in full:
        raise SettingsError(
            "tool_loop_settings.tool_call_format: the chat template renders a tool message by rewriting the "
            "conversation before it; use tool_call_format: tags"
        )
    before, _, after = full[len(head) :].partition(SENTINEL)
    closing = head[head.rindex(answer) + len(answer) :]  # the end of the assistant turn the call stopped in
    return closing + before, after


def call_format(kind: str, names: list[str], tokenizer: Any) -> TagsFormat | ChatTemplateFormat:
    if kind == "tags":
        return TagsFormat(tuple(names))
    before, after = template_parts(tokenizer)
    return ChatTemplateFormat(tuple(names), before, after)
