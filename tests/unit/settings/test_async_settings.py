"""rollout_settings.async: a strict block under a Python keyword, written back as `async`, and refused with
what to write instead where it cannot act (no vLLM server, no rollout correction, PPO, tools)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from turbo.settings.base import settings_as_run
from turbo.settings.pipelines.train.grpo import GrpoExperimentSettings
from turbo.settings.pipelines.train.ppo import PpoExperimentSettings

from ...helpers import CONFIGS

GRPO = json.loads((CONFIGS / "train" / "grpo" / "lora.json").read_text())
PPO = json.loads((CONFIGS / "train" / "ppo" / "lora.json").read_text())
SERVER = {"url": "http://127.0.0.1:8000"}
CORRECTION = {"level": "token", "mode": "truncate", "cap": 2.0}


def overlapped(base: dict, rollout: dict | None = None, trainer: dict | None = None, **top: object) -> dict:
    settings = json.loads(json.dumps(base))
    settings["rollout_settings"].update(
        rollout if rollout is not None else {"vllm_server": SERVER, "async": {"max_staleness": 1}}
    )
    settings["trainer_settings"].update({"rollout_correction": CORRECTION} if trainer is None else trainer)
    return {**settings, **top}


def test_async_reads_and_writes_back_under_its_name() -> None:
    settings = GrpoExperimentSettings.model_validate(overlapped(GRPO))
    assert settings.rollout_settings.async_.max_staleness == 1
    written = settings_as_run(settings)
    assert written["rollout_settings"]["async"] == {"max_staleness": 1} and "async_" not in json.dumps(
        written
    )
    assert GrpoExperimentSettings.model_validate(written) == settings


@pytest.mark.parametrize(
    ("rollout", "trainer", "message"),
    [
        ({"async": {"max_staleness": 1}}, None, "rollout_settings.async overlaps sampling on a vLLM server"),
        ({"use_vllm": True, "async": {}}, None, "from a colocated vLLM engine (use_vllm: true)"),
        ({"vllm_server": SERVER, "async": {}}, {}, 'trainer_settings.rollout_correction, e.g. {"level"'),
        ({"vllm_server": SERVER, "async": {"max_staleness": 0}}, None, "max_staleness"),
        ({"vllm_server": SERVER, "async": {"staleness": 1}}, None, "did you mean 'max_staleness'"),
        ({"vllm_server": SERVER, "asynch": {}}, None, "did you mean 'async'"),
    ],
)
def test_async_is_refused_where_it_cannot_act(rollout: dict, trainer: dict | None, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GrpoExperimentSettings.model_validate(overlapped(GRPO, rollout, trainer))


def test_async_is_for_grpo_without_tools() -> None:
    with pytest.raises(ValidationError, match="train_grpo only"):
        PpoExperimentSettings.model_validate(overlapped(PPO))
    tools = [{"type": "python", "name": "calc", "function": "math:sqrt"}]
    with pytest.raises(ValidationError, match="does not overlap trajectories with tool calls"):
        GrpoExperimentSettings.model_validate(overlapped(GRPO, tool_settings=tools))
