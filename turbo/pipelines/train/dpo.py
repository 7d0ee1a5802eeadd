"""DPO and its relatives on pair preferences (full or PEFT), against a frozen or precomputed reference."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from turbo.data.chat import build_chat_samples
from turbo.data.pair_preferences import PairCollator, PairSample, build_pair_samples
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.modeling.varlen import reads_offsets, use_varlen_attention
from turbo.pipelines.train.common import (
    run_training,
    save_final,
    start_experiment,
    training_arguments,
    training_data,
    write_data_reports,
)
from turbo.pipelines.train.evaluation import attach_chat_cherry_picks, attach_loggers
from turbo.settings.pipelines.train.dpo import DpoExperimentSettings, DpoTrainerSettings

logger = logging.getLogger("turbo")

PREVIEW_PAIRS = 3


def pair_previews(samples: list[PairSample], tokenizer: Any) -> list[str]:
    """The first pairs as the model sees them, answers (the trained tokens) in [[...]]."""
    return [
        f"### pair {i} ({sample.name}, {sample.record.where})\n"
        f"prompt: {tokenizer.decode(sample.prompt_ids)}\n"
        f"chosen: [[{tokenizer.decode(sample.chosen_ids)}]]\n"
        f"rejected: [[{tokenizer.decode(sample.rejected_ids)}]]\n"
        for i, sample in enumerate(samples[:PREVIEW_PAIRS])
    ]


def load_reference(settings: DpoExperimentSettings, tokenizer: Any) -> Any:
    """The separate frozen reference: ref_model_settings, or the starting model without a new adapter
    (a loaded adapter stays on, frozen). None where the loss needs none or the adapter is disabled."""
    trainer = settings.trainer_settings
    if not settings.uses_reference or not trainer.use_ref_model:
        return None
    if settings.ref_model_settings is not None:
        return load_model(settings.ref_model_settings, tokenizer, settings.tokenizer_settings)
    ref_settings = settings.model_settings.model_copy(update={"peft_settings": None, "is_trainable": False})
    return load_model(ref_settings, tokenizer, settings.tokenizer_settings)


def load_sft_model(settings: DpoExperimentSettings, tokenizer: Any) -> Any:
    """use_sft_model: the starting model (a loaded adapter stays on, no new one), frozen, for the
    rewards/sft_* metrics; None otherwise."""
    if not settings.trainer_settings.use_sft_model:
        return None
    sft_settings = settings.model_settings.model_copy(update={"peft_settings": None, "is_trainable": False})
    return load_model(sft_settings, tokenizer, settings.tokenizer_settings)


def precompute_references(
    trainer_settings: DpoTrainerSettings,
    train_features: list[dict[str, Any]],
    val_features: list[dict[str, Any]],
    reference: Any,
    disable_adapter: bool,
    collators: tuple[Any, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """precompute_ref_log_probs: the train and val features with the reference log-probs of every pair,
    computed once by `reference` (its adapter disabled where `disable_adapter`) with the (train, val)
    collators."""
    from turbo.trainers.dpo import REFERENCE_KEYS
    from turbo.trainers.logps import precompute_reference_logps

    batch, lc_alpha = trainer_settings.per_device_eval_batch_size, trainer_settings.lc_alpha
    train_collator, val_collator = collators
    train_features = precompute_reference_logps(
        train_features, reference, train_collator, batch, disable_adapter, REFERENCE_KEYS, lc_alpha
    )
    val_features = precompute_reference_logps(
        val_features, reference, val_collator, batch, disable_adapter, REFERENCE_KEYS, lc_alpha
    )
    logger.info("precomputed the reference log-probs of %d pairs", len(train_features) + len(val_features))
    return train_features, val_features


def dpo_callbacks(trainer_settings: DpoTrainerSettings, ref_model: Any, folder: Path) -> list[Any]:
    """The metrics log, and the reference sync where sync_ref_model is on."""
    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.dpo import SyncRefModelCallback

    callbacks: list[Any] = [MetricsLogCallback(folder / "metrics.jsonl")]
    if trainer_settings.sync_ref_settings.sync_ref_model:
        callbacks.append(SyncRefModelCallback(ref_model, trainer_settings.sync_ref_settings))
    return callbacks


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
        "callbacks": dpo_callbacks(trainer_settings, ref_model, folder),
    }


def log_reference(
    trainer_settings: DpoTrainerSettings, uses_reference: bool, ref_model: Any, separate: str, shared: str
) -> None:
    """The loss and where its reference log-probs come from: none, precomputed, `separate` (ref_model)
    or `shared` (the policy with its adapter disabled)."""
    logger.info(
        "loss %s; reference: %s",
        trainer_settings.loss_settings.loss_type,
        "none"
        if not uses_reference
        else "precomputed"
        if trainer_settings.precompute_ref_log_probs
        else separate
        if ref_model is not None
        else shared,
    )


def run(settings: DpoExperimentSettings) -> None:

    from turbo.trainers.dpo import DpoTrainer

    folder, resume = start_experiment(settings)
    trainer_settings = settings.trainer_settings
    need_margin = trainer_settings.loss_settings.uses_margin

    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    train, train_report = build_pair_samples(
        settings.train_dataset_settings, tokenizer, seed=settings.seed, need_margin=need_margin
    )
    reports = {"train": train_report}
    val: list[PairSample] = []
    if settings.val_dataset_settings is not None:
        val, reports["val"] = build_pair_samples(
            settings.val_dataset_settings, tokenizer, seed=settings.seed, need_margin=need_margin
        )
    cherry_picks = []
    if settings.cherry_pick_settings is not None:
        cherry_picks, reports["cherry_pick"] = build_chat_samples(
            settings.cherry_pick_settings.dataset_settings, tokenizer, seed=settings.seed, inference=True
        )
    train, val = training_data(settings, tokenizer, train, val)
    write_data_reports(folder, reports, pair_previews(train, tokenizer))
    train_features = [sample.features() for sample in train]
    val_features = [sample.features() for sample in val]

    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    ref_model = load_reference(settings, tokenizer)
    sft_model = load_sft_model(settings, tokenizer)
    # padding-free batches where the attention keeps each row to itself (as in train_sft); LD-DPO
    # (lc_alpha) pairs the rows [chosen; rejected] of padded batches
    peft = settings.model_settings.peft_settings
    flat = trainer_settings.padding_free and trainer_settings.lc_alpha is None
    flat = flat and (peft is None or not peft.virtual_tokens)
    flat = flat and all(
        use_varlen_attention(m) or reads_offsets(m) for m in (model, ref_model, sft_model) if m is not None
    )
    collator = PairCollator(tokenizer.pad_token_id, flat=flat)
    if trainer_settings.precompute_ref_log_probs:
        train_features, val_features = precompute_references(
            trainer_settings,
            train_features,
            val_features,
            ref_model if ref_model is not None else model,
            ref_model is None and settings.trains_adapter,
            (collator, collator),
        )
        ref_model = None

    trainer = DpoTrainer(
        model=model,
        sft_model=sft_model,
        train_dataset=train_features,
        eval_dataset=val_features or None,
        data_collator=collator,
        processing_class=tokenizer,
        **dpo_trainer_arguments(settings, ref_model, folder),
    )
    log_reference(
        trainer_settings,
        settings.uses_reference,
        ref_model,
        "separate model",
        "the model with its adapter disabled",
    )
    attach_chat_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder)
    attach_loggers(trainer, settings)
    run_training(trainer, resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "model", final)
