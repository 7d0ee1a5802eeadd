"""The reward functions of online RL and the checks of their settings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from turbo.errors import SettingsError
from turbo.settings.rewards import RewardSettings
from turbo.trainers.rewards import build_rewards, last_number, normalize, score

ADAPTER = TypeAdapter(RewardSettings)


def reward(spec: dict) -> tuple:
    return build_rewards([ADAPTER.validate_python(spec)], tokenizer=None)


def values(spec: dict, answers: list[str], references: list, lengths: list[int] | None = None) -> list[float]:
    lengths = lengths or [1] * len(answers)
    totals, _ = score(reward(spec), [""] * len(answers), answers, references, lengths)
    return totals


def test_exact_match_after_normalisation() -> None:
    answers = ["  Paris. ", "paris", "Lyon", "Paris"]
    assert values({"type": "exact_match"}, answers, ["Paris", "Paris!", "Paris", None]) == [1, 1, 0, 0]
    assert values({"type": "exact_match", "normalize": False}, ["paris", " Paris "], ["Paris"] * 2) == [0, 1]
    assert normalize("  The  Answer, ") == "the answer"


def test_number_match_reads_the_last_number() -> None:
    answers = ["It is 12.", "3 + 9 = 12", "1,200 in all", "twelve", "12.0"]
    refs = ["12", "12", "1200", "12", "12"]
    assert values({"type": "number_match"}, answers, refs) == [1, 1, 1, 0, 1]
    assert last_number("-3 and 4.5") == 4.5 and last_number("none") is None


def test_regex_modes() -> None:
    answers = ["42", "The answer is 42", "42 apples"]
    assert values({"type": "regex", "pattern": r"\d+"}, answers, [None] * 3) == [1, 1, 1]
    assert values({"type": "regex", "pattern": r"\d+", "mode": "match"}, answers, [None] * 3) == [1, 0, 1]
    assert values({"type": "regex", "pattern": r"\d+", "mode": "fullmatch"}, answers, [None] * 3) == [1, 0, 0]
    with pytest.raises(ValidationError, match="regular expression"):
        ADAPTER.validate_python({"type": "regex", "pattern": "("})


def test_length_penalty_in_tokens_and_characters() -> None:
    spec = {"type": "length", "target": 4}
    assert values(spec, ["a"] * 3, [None] * 3, lengths=[2, 4, 10]) == [0, 0, -1.5]
    chars = {"type": "length", "target": 0, "unit": "characters"}
    assert values(chars, ["ab", "", "abcde"], [None] * 3) == [-2, 0, -5]


def test_weighted_sum_and_per_function_values() -> None:
    rewards = build_rewards(
        [
            ADAPTER.validate_python({"type": "number_match", "weight": 2.0, "name": "accuracy"}),
            ADAPTER.validate_python(
                {"type": "regex", "pattern": r"^\d+$", "mode": "fullmatch", "weight": 0.5}
            ),
        ],
        tokenizer=None,
    )
    totals, per_function = score(rewards, ["", ""], ["7", "it is 7"], ["7", "7"], [1, 3])
    assert per_function == {"accuracy": [1.0, 1.0], "regex": [1.0, 0.0]}
    assert totals == [2.5, 2.0]


def test_python_function_runs_the_users_code(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "my_rewards.py").write_text(
        "def score(prompts, answers, references):\n"
        "    return [len(a) + len(p) for p, a in zip(prompts, answers)]\n"
        "def wrong(prompts, answers, references):\n    return [1.0]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rewards = reward({"type": "python", "function": "my_rewards:score"})
    assert score(rewards, ["ab", "c"], ["xyz", ""], [None, None], [1, 1])[0] == [5, 1]
    wrong = reward({"type": "python", "function": "my_rewards:wrong"})
    with pytest.raises(SettingsError, match="1 values for 2 answers"):
        score(wrong, ["a", "b"], ["a", "b"], [None, None], [1, 1])
    with pytest.raises(SettingsError, match="cannot import my_rewards:missing"):
        reward({"type": "python", "function": "my_rewards:missing"})
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"type": "python", "function": "not a reference"})
    sys.modules.pop("my_rewards", None)
