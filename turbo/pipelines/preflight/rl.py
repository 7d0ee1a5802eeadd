"""Checks of online RL (train_grpo, train_ppo): the user's python rewards import, vLLM for rollouts.

A python reward is looked up without running it (the run imports it): its module is found on the path
and, where its source is a Python file, the function's name is defined in it (read, not executed).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

from turbo.pipelines.preflight.common import vllm_problem


def _defined_names(source: str) -> set[str] | None:
    """Names a module may define at import (defs, classes, assignments, imports, also inside its if / try
    blocks), or None when it may define any (a star import, a module __getattr__)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(alias.name == "*" for alias in node.names):
                return None
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return None if "__getattr__" in names else names


def function_problem(reference: str) -> str | None:
    """Why 'module:function' cannot be imported, found without running the module, or None."""
    module_name, _, name = reference.partition(":")
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:  # a parent package that is missing or fails to import
        return f"cannot import {module_name}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a parent package's own code raised while importing
        return f"importing the package of {module_name} fails: {type(exc).__name__}: {exc}"
    if spec is None:
        return f"no module named {module_name!r} (put it on PYTHONPATH or in the working folder)"
    origin = spec.origin
    if origin is None or not origin.endswith(".py"):
        return None
    try:
        names = _defined_names(Path(origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
        return f"cannot read {origin}: {exc}"
    if names is not None and name not in names:
        return f"{origin} defines no {name!r}"
    return None


def python_rewards(settings: Any) -> list[str]:
    """Every reward of type python names a function that can be imported."""
    from turbo.settings.rewards import PythonRewardSettings  # here: validate of other commands skips it

    problems = []
    for index, reward in enumerate(settings.reward_settings):
        if not isinstance(reward, PythonRewardSettings):
            continue
        problem = function_problem(reward.function)
        if problem:
            problems.append(f"reward_settings.{index}.function: {reward.function}: {problem}")
    return problems


def rollout_engine(settings: Any) -> list[str]:
    """Colocated vLLM rollouts (rollout_settings.use_vllm) need a supported vLLM installed."""
    if not settings.rollout_settings.use_vllm:
        return []
    problem = vllm_problem()
    return [f"rollout_settings.use_vllm: {problem.removeprefix('use_vllm: ')}"] if problem else []


def server_api_key(settings: Any) -> list[str]:
    """A vLLM server with an API key (rollout_settings.vllm_server.api_key_env): the variable is set."""
    from turbo.generators.vllm_server import api_key_problem

    problem = api_key_problem(settings.rollout_settings.vllm_server)
    return [problem] if problem else []
