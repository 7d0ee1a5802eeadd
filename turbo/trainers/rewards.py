"""Reward functions of online RL, built from reward_settings: each maps (prompts, answers, references)
to one float per answer. Registry: REWARDS, keyed by the `type` of the settings."""

from __future__ import annotations

import importlib
import inspect
import math
import re
import string
from collections.abc import Callable
from typing import Any

from turbo.errors import SettingsError
from turbo.settings.rewards import (
    ExactMatchRewardSettings,
    LengthRewardSettings,
    NumberMatchRewardSettings,
    PythonRewardSettings,
    RegexRewardSettings,
    RewardModelRewardSettings,
    ToolCallRewardSettings,
)

RewardFunction = Callable[..., list[float]]
"""(prompts, answers, references, answer token counts) -> one reward per answer. A function with the
attribute `takes_trajectories` also gets `trajectories=`: per answer, its segments (role, text, tool,
trained, error) when the policy called tools, else one policy segment."""

NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*(?:\.\d+)?")


def normalize(text: str) -> str:
    """Lower case, single spaces, no surrounding spaces or punctuation."""
    return " ".join(text.lower().split()).strip(string.punctuation + " ")


def last_number(text: str | None) -> float | None:
    """The last number written in `text` (thousands commas dropped), or None."""
    found = NUMBER.findall(text or "")
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def exact_match(settings: ExactMatchRewardSettings, tokenizer: Any) -> RewardFunction:
    def reward(prompts: list[str], answers: list[str], references: list, lengths: list[int]) -> list[float]:
        prepare = normalize if settings.normalize else str.strip
        return [
            float(ref is not None and prepare(answer) == prepare(ref))
            for answer, ref in zip(answers, references, strict=True)
        ]

    return reward


def number_match(settings: NumberMatchRewardSettings, tokenizer: Any) -> RewardFunction:
    def reward(prompts: list[str], answers: list[str], references: list, lengths: list[int]) -> list[float]:
        out = []
        for answer, ref in zip(answers, references, strict=True):
            got, want = last_number(answer), last_number(ref)
            out.append(float(got is not None and want is not None and abs(got - want) <= settings.tolerance))
        return out

    return reward


def regex(settings: RegexRewardSettings, tokenizer: Any) -> RewardFunction:
    pattern = re.compile(settings.pattern)
    check = getattr(pattern, settings.mode)

    def reward(prompts: list[str], answers: list[str], references: list, lengths: list[int]) -> list[float]:
        return [float(check(answer) is not None) for answer in answers]

    return reward


def length(settings: LengthRewardSettings, tokenizer: Any) -> RewardFunction:
    target = settings.target

    def reward(prompts: list[str], answers: list[str], references: list, lengths: list[int]) -> list[float]:
        counts = lengths if settings.unit == "tokens" else [len(answer) for answer in answers]
        return [-max(0, count - target) / max(target, 1) for count in counts]

    return reward


def reward_model(settings: RewardModelRewardSettings, tokenizer: Any) -> RewardFunction:
    """The reward model's score of prompt + answer, re-tokenised with its own tokenizer."""
    from turbo.generators.classification import sequence_logits
    from turbo.modeling.loading import load_model
    from turbo.modeling.tokenizer import read_tokenizer
    from turbo.settings.tokenizer import TokenizerSettings

    path = settings.model_settings.model_path
    rm_tokenizer = read_tokenizer(
        path, "model_settings.model_path",
        trust_remote_code=settings.model_settings.transformers_settings.trust_remote_code,
    )  # fmt: skip
    if rm_tokenizer.pad_token_id is None:
        rm_tokenizer.pad_token = rm_tokenizer.eos_token
    model = load_model(settings.model_settings, rm_tokenizer, TokenizerSettings())
    model.requires_grad_(False)
    model.eval()

    def reward(prompts: list[str], answers: list[str], references: list, lengths: list[int]) -> list[float]:
        texts = [prompt + answer for prompt, answer in zip(prompts, answers, strict=True)]
        ids = rm_tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [row[0] for row in sequence_logits(model, rm_tokenizer, ids, settings.batch)]

    reward.model = model  # type: ignore[attr-defined]  # the value model may start from it
    return reward


def python_function(settings: PythonRewardSettings, tokenizer: Any) -> RewardFunction:
    """The user's `module:function`, imported now (an import error is reported before training)."""
    module_name, _, name = settings.function.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise SettingsError(f"reward_settings: cannot import {settings.function}: {exc}") from exc

    takes = accepts_trajectories(function)

    def reward(
        prompts: list[str], answers: list[str], references: list, lengths: list[int], trajectories: Any = None
    ) -> list[float]:
        extra = {"trajectories": trajectories} if takes else {}
        out = function(prompts=prompts, answers=answers, references=references, **extra)
        values = [float(v) for v in out]
        if len(values) != len(answers):
            raise SettingsError(
                f"reward function {settings.function}: {len(values)} values for {len(answers)} answers"
            )
        if not all(math.isfinite(v) for v in values):
            raise SettingsError(f"reward function {settings.function} returned a non-finite value")
        return values

    reward.takes_trajectories = takes  # type: ignore[attr-defined]
    return reward


def accepts_trajectories(function: Any) -> bool:
    """The user's reward takes a `trajectories` keyword (or **kwargs): then it gets them."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "trajectories" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def tool_call(settings: ToolCallRewardSettings, tokenizer: Any) -> RewardFunction:
    """1 when the trajectory holds a call of `settings.tool` that did not fail."""

    def reward(
        prompts: list[str], answers: list[str], references: list, lengths: list[int], trajectories: Any = None
    ) -> list[float]:
        def used(segment: dict[str, Any]) -> bool:
            called = segment["role"] == "tool" and segment.get("tool") == settings.tool
            return called and not segment.get("error")

        rows = trajectories or [[] for _ in answers]
        return [float(any(used(segment) for segment in row)) for row in rows]

    reward.takes_trajectories = True  # type: ignore[attr-defined]
    return reward


REWARDS: dict[str, Callable[[Any, Any], RewardFunction]] = {
    "exact_match": exact_match,
    "number_match": number_match,
    "regex": regex,
    "length": length,
    "reward_model": reward_model,
    "python": python_function,
    "tool_call": tool_call,
}


def build_rewards(settings: list, tokenizer: Any) -> list[tuple[Any, RewardFunction]]:
    """(settings, function) for each reward of reward_settings, in order."""
    return [(reward, REWARDS[reward.type](reward, tokenizer)) for reward in settings]


def score(
    rewards: list[tuple[Any, RewardFunction]],
    prompts: list[str],
    answers: list[str],
    references: list[str | None],
    lengths: list[int],
    trajectories: list[list[dict[str, Any]]] | None = None,
) -> tuple[list[float], dict[str, list[float]]]:
    """The weighted total per answer, and each reward's values by its label. `trajectories` (per answer,
    its segments) go to the functions that take them."""
    per_function = {
        settings.label: function(
            prompts,
            answers,
            references,
            lengths,
            **({"trajectories": trajectories} if getattr(function, "takes_trajectories", False) else {}),
        )
        for settings, function in rewards
    }
    totals = [0.0] * len(answers)
    for settings, _ in rewards:
        for i, value in enumerate(per_function[settings.label]):
            totals[i] += settings.weight * value
    return totals, per_function
