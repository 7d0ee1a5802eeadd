"""Reward functions of online RL (train_ppo, train_grpo): rule rewards shipped with turbo, a reward model,
or the user's own Python function. Each has a `weight`; the reward of an answer is the weighted sum."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from turbo.settings.base import StrictModel
from turbo.settings.model import ModelSettings


class BaseRewardSettings(StrictModel):
    weight: float = Field(1.0, description="The reward's share in the total: sum of weight * reward.")
    name: str | None = Field(
        None, description="The name its metrics are logged under (reward/<name>/mean). None: the type."
    )

    @property
    def label(self) -> str:
        return self.name or str(getattr(self, "type"))  # noqa: B009 - every subclass has a type


class ExactMatchRewardSettings(BaseRewardSettings):
    """1 when the answer equals the record's `reference` after normalisation (case, spaces, final
    punctuation), else 0."""

    type: Literal["exact_match"]
    normalize: bool = Field(True, description="Lower-case, collapse spaces, strip surrounding punctuation.")


class NumberMatchRewardSettings(BaseRewardSettings):
    """1 when the last number in the answer equals the number in the record's `reference`, else 0."""

    type: Literal["number_match"]
    tolerance: float = Field(1e-6, ge=0, description="Largest absolute difference counted as equal.")


class RegexRewardSettings(BaseRewardSettings):
    """1 when the answer matches `pattern` (a format check), else 0."""

    type: Literal["regex"]
    pattern: str = Field(description="A Python regular expression.")
    mode: Literal["search", "match", "fullmatch"] = Field(
        "search", description="search: anywhere; match: at the start; fullmatch: the whole answer."
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class LengthRewardSettings(BaseRewardSettings):
    """A length penalty: -(answer length beyond target) / max(target, 1); 0 up to the target."""

    type: Literal["length"]
    target: int = Field(ge=0, description="Answers up to this length get 0.")
    unit: Literal["tokens", "characters"] = Field(
        "tokens", description="Length in answer tokens (EOS included) or in characters of the answer text."
    )


class RewardModelRewardSettings(BaseRewardSettings):
    """The score of a reward model (a train_rm output: one-output sequence classifier) on prompt + answer,
    re-tokenised with the reward model's own tokenizer."""

    type: Literal["reward_model"]
    model_settings: ModelSettings
    batch: int = Field(8, gt=0, description="Sequences scored per forward pass.")

    @model_validator(mode="after")
    def _classifier(self) -> RewardModelRewardSettings:
        if self.model_settings.model_type != "seq_cls":
            raise ValueError("model_settings.model_type must be 'seq_cls' for a reward model")
        if self.model_settings.peft_settings is not None or self.model_settings.is_trainable:
            raise ValueError("the reward model is frozen: remove peft_settings / is_trainable")
        return self


class PythonRewardSettings(BaseRewardSettings):
    """Your own function, imported and RUN AS YOUR CODE: `function(prompts=[...], answers=[...],
    references=[...])` returns one float per answer (references hold None where a record has none).
    The module must be importable (on PYTHONPATH or in the working folder)."""

    type: Literal["python"]
    function: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="'module:function', e.g. 'my_rewards:score'."
    )


class ToolCallRewardSettings(BaseRewardSettings):
    """A format reward of tool use: 1 when the trajectory called the tool named `tool` (one of
    tool_settings) at least once and the call did not fail, else 0."""

    type: Literal["tool_call"]
    tool: str = Field(description="The name of a tool in tool_settings.")


RewardSettings = Annotated[
    ExactMatchRewardSettings
    | NumberMatchRewardSettings
    | RegexRewardSettings
    | LengthRewardSettings
    | RewardModelRewardSettings
    | PythonRewardSettings
    | ToolCallRewardSettings,
    Field(discriminator="type"),
]


def check_reward_labels(rewards: list) -> None:
    """Each reward logs under its own name."""
    labels = [reward.label for reward in rewards]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(
            f"reward_settings: two rewards log as {', '.join(repeated)}; give them distinct `name`s"
        )
