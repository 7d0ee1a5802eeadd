"""tool_settings on train_grpo, train_ppo and inference_chat: a discriminated union on `type`, unique
names, a reward that names a tool names one of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from turbo.settings.pipelines.inference.chat import ChatInferenceExperimentSettings
from turbo.settings.pipelines.train.grpo import GrpoExperimentSettings
from turbo.settings.pipelines.train.ppo import PpoExperimentSettings

CONFIGS = Path(__file__).resolve().parents[2] / "fixtures" / "configs"
CALC = {"type": "python", "name": "calc", "function": "agentic_tools:calc"}


def grpo(**extra) -> dict:
    data = json.loads((CONFIGS / "train" / "grpo" / "lora.json").read_text())
    return {**data, **extra}


@pytest.mark.parametrize("settings_class", [GrpoExperimentSettings, PpoExperimentSettings])
def test_tools_and_loop_settings_are_read(settings_class) -> None:
    data = grpo(tool_settings=[CALC], tool_loop_settings={"max_tool_calls": 2})
    if settings_class is PpoExperimentSettings:
        data["trainer_settings"] = {"rollout_batch_size": 4}
    settings = settings_class.model_validate(data)
    assert settings.tool_settings[0].function == "agentic_tools:calc"
    assert settings.tool_loop_settings.max_tool_calls == 2
    assert settings.tool_loop_settings.tool_call_format == "tags"


def test_duplicate_names_and_unknown_tools_in_rewards_are_refused() -> None:
    rewards = [{"type": "tool_call", "tool": "search"}]
    with pytest.raises(ValidationError) as caught:
        GrpoExperimentSettings.model_validate(grpo(tool_settings=[CALC, CALC], reward_settings=rewards))
    text = str(caught.value)
    assert "tool_settings.1.name" in text and "'calc' is used twice" in text
    assert "reward_settings.0.tool" in text and "no tool named 'search'; tools: calc, calc" in text


def test_an_unknown_tool_type_names_the_variants() -> None:
    with pytest.raises(ValidationError, match="'python', 'retriever'|'retriever', 'python'"):
        GrpoExperimentSettings.model_validate(grpo(tool_settings=[{**CALC, "type": "shell"}]))


def test_inference_chat_takes_tools() -> None:
    data = {
        "inference_settings": [{"model_settings": {"model_path": "tests/fixtures/models/llama_tiny"}}],
        "dataset_settings": {
            "dataset_type": "chat",
            "sources": [{"name": "a", "records_path": "x.jsonl", "sample_rate": 1.0}],
        },
        "save_path": "out",
        "tool_settings": [CALC, CALC],
    }
    with pytest.raises(ValidationError, match="'calc' is used twice"):
        ChatInferenceExperimentSettings.model_validate(data)


def test_the_overlong_penalty_is_refused_with_tools() -> None:
    data = grpo(tool_settings=[CALC])
    data["trainer_settings"] = {**data["trainer_settings"], "overlong_penalty": {"buffer": 2, "penalty": 1.0}}
    with pytest.raises(ValidationError, match="overlong_penalty\n  counts answer tokens against"):
        GrpoExperimentSettings.model_validate(data)
