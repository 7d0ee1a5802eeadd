"""Checks of tool_settings (train_grpo, train_ppo, inference_chat): a python tool's function can be
imported (found without running it), a retriever's index holds vectors as wide as its encoder gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turbo.errors import TurboError
from turbo.pipelines.preflight.common import is_folder
from turbo.pipelines.preflight.rl import function_problem
from turbo.settings.paths import path_problem


def _retriever_problems(tool: Any, where: str) -> list[str]:
    from turbo.modeling.rag.encoder import encoder_width  # here: validate of other files skips them
    from turbo.modeling.rag.retriever import index_dimension

    encoder = tool.encoder_settings
    if not is_folder(encoder.model_path):
        return []  # input_files reports it
    try:
        width = encoder_width(encoder, f"{where}.encoder_settings")
    except TurboError as exc:
        return [str(exc)]
    index_path = tool.index_settings.index_path
    if path_problem(Path(index_path), "file") is not None:
        return []
    try:
        dimension = index_dimension(index_path)
    except TurboError as exc:
        return [f"{where}.index_settings.index_path: {exc}"]
    if dimension == width:
        return []
    return [
        f"{where}.index_settings.index_path: {index_path} holds vectors of width {dimension}, but the "
        f"encoder at {encoder.model_path} ({where}.encoder_settings.model_path) gives {width}; use the "
        "encoder the index was built with, or rebuild the index with this one (build_index)"
    ]


def tools(settings: Any) -> list[str]:
    """Every tool of tool_settings can be opened: python functions import, retrievers fit their index."""
    from turbo.settings.tools import PythonToolSettings, RetrieverToolSettings  # only files with tools

    problems: list[str] = []
    for index, tool in enumerate(getattr(settings, "tool_settings", None) or []):
        where = f"tool_settings.{index}"
        if isinstance(tool, PythonToolSettings):
            problem = function_problem(tool.function)
            if problem:
                problems.append(f"{where}.function: {tool.function}: {problem}")
        elif isinstance(tool, RetrieverToolSettings):
            problems += _retriever_problems(tool, where)
    return problems
