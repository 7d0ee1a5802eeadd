"""train_dpo: direct preference optimisation and its relatives on pair preferences."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from turbo.settings.base import PositiveCount, StrictModel
from turbo.settings.cherry_pick import ChatCherryPickSettings
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.dpo_losses import DpoLossSettings, SigmoidLossSettings
from turbo.settings.model import ModelSettings
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.problems import Problem
from turbo.settings.trainer import TrainerSettings


class SyncRefModelSettings(StrictModel):
    """TR-DPO (Gorbatovski et al. 2024, arXiv:2404.09656): every sync_steps optimizer steps the
    reference becomes alpha * policy + (1 - alpha) * reference."""

    sync_ref_model: bool = Field(
        False, description="TR-DPO: move the reference towards the policy during training."
    )
    alpha: float = Field(1.0, gt=0, le=1, description="Share of the policy in the new reference.")
    sync_steps: PositiveCount = Field(1, description="Optimizer steps between two updates of the reference.")


class DpoTrainerSettings(TrainerSettings):
    """The trainer settings, with the DPO-family loss and its reference model."""

    loss_settings: DpoLossSettings = Field(
        SigmoidLossSettings(loss_type="sigmoid"), description="The loss (by loss_type) and its parameters."
    )
    use_ref_model: bool = Field(
        True,
        description="Keep a separate frozen reference model (ref_model_settings, or a copy of the "
        "starting model). With PEFT, false uses the same model with the adapter disabled (no second "
        "copy in memory). Losses without a reference (simpo, orpo, asft; cpo, hinge, slic_hf without "
        "norm) load none.",
    )
    precompute_ref_log_probs: bool = Field(
        False,
        description="Compute the reference log-probs of every pair once before training and cache them "
        "(the reference model is freed afterwards).",
    )
    sync_ref_settings: SyncRefModelSettings = SyncRefModelSettings()
    average_log_prob: bool | None = Field(
        None,
        description="Score answers by their log-probs averaged over the answer tokens (true) or summed "
        "(false). None: what the loss type is defined with (averaged for ipo, orpo, simpo, asft).",
    )
    use_sft_model: bool = Field(
        False,
        description="Keep a frozen copy of the starting (SFT) model and log the policy's DPO rewards "
        "against it as rewards/sft_{chosen,rejected,margins,accuracies} (beside the reference's); the "
        "loss never reads it.",
    )
    share_prompts: bool = Field(
        True,
        description="train_dpo: score a pair's chosen and rejected answers over one copy of their prompt "
        "(the prompt passes the policy and the reference once per pair, not twice; the same log-probs "
        "and gradients). Used with padding_free (not with lc_alpha) where the attention is sdpa/eager "
        "(through turbo_varlen) and the output layer a plain linear head, not under DeepSpeed ZeRO-3; "
        "else each answer keeps its "
        "own copy (train_multimodal_dpo always).",
    )
    lc_alpha: float | None = Field(
        None,
        ge=0,
        le=1,
        description="LD-DPO (length-desensitised DPO, Liu et al. 2024, arXiv:2409.06411; the original's "
        "train_lddpo): the answer tokens past the length of the pair's shorter answer count lc_alpha times "
        "in the policy's and the reference's log-probs, with any loss_type. None or 1: plain log-probs.",
    )


class DpoExperimentSettings(BaseTrainExperimentSettings):
    train_dataset_settings: PairPreferencesDatasetSettings
    val_dataset_settings: PairPreferencesDatasetSettings | None = None
    ref_model_settings: ModelSettings | None = Field(
        None, description="The reference model; None: the starting model (model_settings)."
    )
    trainer_settings: DpoTrainerSettings = DpoTrainerSettings()
    cherry_pick_settings: ChatCherryPickSettings | None = None

    @property
    def uses_reference(self) -> bool:
        return self.trainer_settings.loss_settings.uses_reference

    def cross_field_problems(self) -> list[Problem]:
        problems = super().cross_field_problems()
        if self.model_settings.model_type != "causal":
            problems.append(("model_settings.model_type", "must be 'causal' for train_dpo"))
        return problems + dpo_problems(self, own_reference=self.trains_adapter)


def dpo_problems(settings: Any, own_reference: bool) -> list[Problem]:
    """The DPO checks of an experiment with `trainer_settings` (DpoTrainerSettings), `model_settings`,
    `ref_model_settings` and pair datasets. `own_reference`: the policy can be its own reference (a PEFT
    adapter to disable), so use_ref_model: false works."""
    problems: list[Problem] = []
    trainer = settings.trainer_settings
    loss = trainer.loss_settings
    for name in ("train_dataset_settings", "val_dataset_settings"):
        dataset = getattr(settings, name, None)
        if getattr(dataset, "score_margin", None) is not None and not loss.uses_margin:
            problems.append(
                (
                    f"{name}.score_margin",
                    f"loss_type '{loss.loss_type}' reads no margin; use loss_type 'sigmoid_with_margin' "
                    "or remove score_margin",
                )
            )
    if settings.ref_model_settings is not None and not trainer.use_ref_model:
        problems.append(("ref_model_settings", "is read only with trainer_settings.use_ref_model: true"))
    needs_model = loss.uses_reference and not trainer.precompute_ref_log_probs
    if needs_model and not trainer.use_ref_model and not own_reference:
        problems.append(
            (
                "trainer_settings.use_ref_model",
                f"loss_type '{loss.loss_type}' needs a reference: set trainer_settings.use_ref_model: "
                "true or precompute_ref_log_probs: true (or train a PEFT adapter, whose base model is the "
                "reference)",
            )
        )
    if trainer.precompute_ref_log_probs and not loss.uses_reference:
        problems.append(
            (
                "trainer_settings.precompute_ref_log_probs",
                f"loss_type '{loss.loss_type}' reads no reference log-probs; remove precompute_ref_log_probs",
            )
        )
    if trainer.sync_ref_settings.sync_ref_model:
        problems += sync_problems(
            settings.model_settings,
            loss.uses_reference,
            trainer.use_ref_model,
            trainer.precompute_ref_log_probs,
        )
    return problems


def sync_problems(
    model: ModelSettings, uses_reference: bool, use_ref_model: bool, precompute: bool
) -> list[Problem]:
    """TR-DPO updates a separate reference with the policy's weights, name by name: a full model, or a
    loaded adapter (adapter_path) that the reference carries too."""
    where = "trainer_settings.sync_ref_settings.sync_ref_model"
    problems = []
    if not uses_reference or not use_ref_model or precompute:
        problems.append(
            (
                where,
                "updates a separate reference model: it needs a loss with a reference, "
                "use_ref_model: true and precompute_ref_log_probs: false",
            )
        )
    if model.peft_settings is not None:
        problems.append(
            (
                where,
                "mixes the policy's weights into the reference, but a new adapter (peft_settings) is not "
                "in the reference; train fully or start from a saved adapter (adapter_path, is_trainable)",
            )
        )
    return problems
