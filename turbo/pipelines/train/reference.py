"""The frozen models beside a policy, as plain functions the train pipelines share: the reference or
starting model, loaded one way; every model that reads the policy's tokenizer resized as the policy
is; the reference log-probs precomputed once; the reference kept in sync with the policy; what
train_dpo's and train_multimodal_dpo's trainers take alike."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from turbo.modeling.loading import load_model
from turbo.pipelines.train.common import metrics_log, training_arguments
from turbo.settings.model import ModelSettings

logger = logging.getLogger("turbo")


def sharing_tokenizer(model_settings: ModelSettings, policy: ModelSettings) -> ModelSettings:
    """`model_settings` of a model that reads the policy's tokenizer (a reference, a value model): its
    embeddings grow to the tokenizer as the policy's do, new rows initialised by the policy's
    embeddings_initialization_strategy where it sets none of its own."""
    if not (policy.resize_token_embeddings or policy.embeddings_initialization_strategy):
        return model_settings
    strategy = model_settings.embeddings_initialization_strategy or policy.embeddings_initialization_strategy
    return model_settings.model_copy(
        update={"resize_token_embeddings": True, "embeddings_initialization_strategy": strategy}
    )


def starting_model(policy: ModelSettings) -> ModelSettings:
    """The policy's starting model without a new adapter (a loaded adapter stays on), not trainable."""
    return policy.model_copy(update={"peft_settings": None, "is_trainable": False})


def load_frozen(settings: Any, tokenizer: Any, model_settings: ModelSettings | None = None) -> Any:
    """A frozen model that reads the policy's tokenizer: `model_settings` (a ref_model_settings),
    resized as the policy is, or else the starting model; no gradients, eval mode."""
    policy = settings.model_settings
    chosen = starting_model(policy) if model_settings is None else sharing_tokenizer(model_settings, policy)
    model = load_model(chosen, tokenizer, settings.tokenizer_settings)
    model.requires_grad_(False)
    return model.eval()


def load_reference(settings: Any, tokenizer: Any) -> Any:
    """The separate frozen reference: ref_model_settings, or the starting model without a new adapter
    (a loaded adapter stays on, frozen). None where the loss needs none or the adapter is disabled."""
    if not settings.uses_reference or not settings.trainer_settings.use_ref_model:
        return None
    return load_frozen(settings, tokenizer, settings.ref_model_settings)


def dpo_trainer_arguments(settings: Any, ref_model: Any, folder: Path) -> dict[str, Any]:
    """What train_dpo's and train_multimodal_dpo's trainers take from the settings alike: the reference,
    the loss and its log-prob options, the training arguments and the callbacks."""
    trainer_settings = settings.trainer_settings
    return {
        "ref_model": ref_model,
        "loss_settings": trainer_settings.loss_settings,
        "average_log_prob": trainer_settings.average_log_prob,
        "lc_alpha": trainer_settings.lc_alpha,
        "args": training_arguments(settings, folder),
        "callbacks": reference_callbacks(trainer_settings, ref_model, folder),
    }


def precompute_references(
    trainer_settings: Any,
    features: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    reference: Any,
    disable_adapter: bool,
    collators: tuple[Any, Any],
    keys: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """precompute_ref_log_probs: the (train, val) features with the reference log-probs under `keys`,
    computed once by `reference` (its adapter disabled where `disable_adapter`) with the (train, val)
    collators; DPO's lc_alpha where the trainer settings have one."""
    from turbo.trainers.logps import precompute_reference_logps

    batch, lc_alpha = trainer_settings.per_device_eval_batch_size, getattr(trainer_settings, "lc_alpha", None)
    train, val = (
        precompute_reference_logps(rows, reference, collator, batch, disable_adapter, keys, lc_alpha)
        for rows, collator in zip(features, collators, strict=True)
    )
    logger.info("precomputed the reference log-probs of %d rows", len(train) + len(val))
    return train, val


def reference_callbacks(trainer_settings: Any, ref_model: Any, folder: Path) -> list[Any]:
    """The metrics log, and the reference sync where sync_ref_model is on (DPO and KTO)."""
    from turbo.trainers.dpo import SyncRefModelCallback

    callbacks: list[Any] = [metrics_log(folder)]
    if trainer_settings.sync_ref_settings.sync_ref_model:
        callbacks.append(SyncRefModelCallback(ref_model, trainer_settings.sync_ref_settings))
    return callbacks


def log_reference(
    trainer_settings: Any, uses_reference: bool, ref_model: Any, separate: str, shared: str
) -> None:
    """The loss and where its reference log-probs come from: none, precomputed, `separate` (ref_model)
    or `shared` (the policy with its adapter disabled)."""
    if not uses_reference:
        source = "none"
    elif trainer_settings.precompute_ref_log_probs:
        source = "precomputed"
    else:
        source = separate if ref_model is not None else shared
    logger.info("loss %s; reference: %s", trainer_settings.loss_settings.loss_type, source)
