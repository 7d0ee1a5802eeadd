"""train_ddpo: distillation DPO, the policy's implied preference matched to a reward model's."""

from __future__ import annotations

from pydantic import Field

from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets.ddpo import DdpoDatasetSettings
from turbo.settings.model import ModelSettings, reward_model_problems
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.problems import Problem
from turbo.settings.tokenizer import TokenizerSettings


class DdpoExperimentSettings(BaseTrainExperimentSettings):
    """The policy's preference p_policy = sigmoid(beta * ((log pi_c - log ref_c) - (log pi_r - log ref_r)))
    is pulled towards the reward model's Bradley-Terry preference p_rm = sigmoid(r_c - r_r) by the KL
    between the two Bernoulli distributions. `tokenizer_settings` (also written `chat_tokenizer_settings`)
    is the policy's tokenizer, `rm_tokenizer_settings` the reward model's."""

    train_dataset_settings: DdpoDatasetSettings
    val_dataset_settings: DdpoDatasetSettings | None = None
    beta: float = Field(0.1, gt=0, description="Temperature of the policy's implicit reward.")
    forward_kl: bool = Field(
        False,
        description="false: KL(p_policy || p_rm) (mode seeking); true: KL(p_rm || p_policy) (mass covering).",
    )
    use_ref_model: bool = Field(
        True,
        description="Keep a frozen copy of the starting model (its loaded adapter included) as the "
        "reference. false: a trained adapter's base model (adapter disabled) is the reference, and "
        "full fine-tuning uses no reference (the policy's log-ratio alone).",
    )
    rm_settings: ModelSettings = Field(
        description="The reward model (a train_rm output: model_type 'seq_cls' with one output); frozen."
    )
    rm_tokenizer_settings: TokenizerSettings = Field(
        TokenizerSettings(), description="The reward model's tokenizer (default: rm_settings.model_path)."
    )
    cherry_pick_settings: ChatCherryPickSettings | None = None

    @property
    def reference(self) -> str:
        """'model' (a frozen copy), 'adapter_disabled' or 'none'."""
        if self.use_ref_model:
            return "model"
        return "adapter_disabled" if self.trains_adapter else "none"

    def cross_field_problems(self) -> list[Problem]:
        problems = super().cross_field_problems()
        if self.model_settings.model_type != "causal":
            problems.append(("model_settings.model_type", "must be 'causal' for train_ddpo (the policy)"))
        rm = self.rm_settings
        problems += reward_model_problems(rm, "rm_settings", "(a reward model from train_rm)")
        if rm.peft_settings is not None or rm.is_trainable:
            problems.append(
                ("rm_settings", "the reward model is frozen: remove peft_settings / is_trainable")
            )
        return problems
