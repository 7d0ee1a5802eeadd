"""The rollout engines of online RL, keyed by the name engine_name gives an experiment's rollout_settings.
Each entry opens its engine for the run (a context manager over the RL experiment settings and the
tokenizer) and releases it on exit; the engines share the interface of turbo.generators.rollout."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from turbo.generators.rollout import RolloutEngine
from turbo.generators.rollout_transformers import open_transformers_engine
from turbo.generators.rollout_vllm import open_vllm_engine
from turbo.generators.tools.loop import with_tools
from turbo.generators.vllm_server import open_server_engine

ENGINES: dict[str, Callable[[Any, Any], AbstractContextManager[RolloutEngine]]] = {
    "transformers": open_transformers_engine,
    "vllm": open_vllm_engine,
    "vllm_server": open_server_engine,
}


def engine_name(rollout: Any) -> str:
    """rollout_settings.vllm_server: 'vllm_server'; use_vllm: 'vllm'; else 'transformers'."""
    if rollout.vllm_server is not None:
        return "vllm_server"
    return "vllm" if rollout.use_vllm else "transformers"


def open_engine(settings: Any, tokenizer: Any) -> AbstractContextManager[RolloutEngine]:
    """The rollout engine of an RL experiment (train_ppo, train_grpo settings), opened for the run; with
    tool_settings, its samples are multi-turn trajectories with tool calls (turbo.generators.tools.loop)."""
    opened = ENGINES[engine_name(settings.rollout_settings)](settings, tokenizer)
    tools = getattr(settings, "tool_settings", None)
    if not tools:
        return opened
    return with_tools(opened, tools, settings.tool_loop_settings, tokenizer)
