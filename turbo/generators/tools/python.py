"""The user's own function as a tool: `function(argument: str) -> str`, each call under a timeout. An
exception, a timeout or a result that is not text becomes the error text of the call's result."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from turbo.errors import SettingsError
from turbo.generators.tools.base import ToolResult, error_result


def import_function(reference: str, where: str) -> Callable[..., Any]:
    module_name, _, name = reference.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise SettingsError(f"{where}: cannot import {reference}: {exc}") from exc
    if not callable(function):
        raise SettingsError(f"{where}: {reference} is not a function")
    return function


@dataclass
class PythonTool:
    """Calls run one by one in a worker thread; a call past `timeout` seconds is abandoned (its thread
    finishes in the background) and answered with an error."""

    name: str
    function: Callable[[str], Any]
    timeout: float
    pool: ThreadPoolExecutor

    def run(self, arguments: list[str]) -> list[ToolResult]:
        return [self.call(argument) for argument in arguments]

    def call(self, argument: str) -> ToolResult:
        future = self.pool.submit(self.function, argument)
        try:
            value = future.result(timeout=self.timeout)
        except FutureTimeout:
            self.pool.shutdown(wait=False)  # the stuck call keeps its thread; later calls get a new one
            self.pool = ThreadPoolExecutor(max_workers=1)
            return error_result(self.name, f"timed out after {self.timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - any failure of user code is the call's result
            return error_result(self.name, f"{type(exc).__name__}: {exc}")
        if not isinstance(value, str):
            return error_result(self.name, f"returned {type(value).__name__}, not text")
        return ToolResult(value)


@contextmanager
def open_python_tool(settings: Any, tokenizer: Any) -> Iterator[PythonTool]:
    function = import_function(settings.function, f"tool_settings ({settings.name}).function")
    tool = PythonTool(settings.name, function, settings.timeout, ThreadPoolExecutor(max_workers=1))
    try:
        yield tool
    finally:
        tool.pool.shutdown(wait=False)
