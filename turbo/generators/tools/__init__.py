"""Tools the policy calls inside its answers, keyed by the `type` of tool_settings (turbo.settings.tools).
Each entry opens a tool for the run: a context manager over its settings and the policy's tokenizer that
yields a Tool (a name and `run(arguments) -> results`, all the calls of a turn at once)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from turbo.generators.tools.base import Tool
from turbo.generators.tools.python import open_python_tool
from turbo.generators.tools.retriever import open_retriever_tool

TOOLS: dict[str, Callable[[Any, Any], AbstractContextManager[Tool]]] = {
    "retriever": open_retriever_tool,
    "python": open_python_tool,
}
