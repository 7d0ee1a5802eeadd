"""What a tool is: a name and `run`, which answers all the calls of one turn at once (one faiss search for
all the queries of a rollout step). A call that fails never raises: its error is the result text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ToolResult:
    text: str
    error: bool = False


class Tool(Protocol):
    name: str

    def run(self, arguments: list[str]) -> list[ToolResult]: ...


def error_result(name: str, what: str) -> ToolResult:
    return ToolResult(f"error: {name}: {what}", error=True)
