"""DPO and its relatives on pair preferences (full or PEFT), against a frozen or precomputed reference."""

from __future__ import annotations

import logging
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
from turbo.settings.pipelines.train.dpo import DpoExperimentSettings

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


def run(settings: DpoExperimentSettings) -> None:

    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.dpo import REFERENCE_KEYS, DpoTrainer, SyncRefModelCallback
    from turbo.trainers.logps import precompute_reference_logps

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
    # padding-free batches where the attention keeps each row to itself (as in train_sft)
    peft = settings.model_settings.peft_settings
    flat = trainer_settings.padding_free and (peft is None or peft.name == "LORA")
    flat = flat and all(
        use_varlen_attention(m) or reads_offsets(m) for m in (model, ref_model) if m is not None
    )
    collator = PairCollator(tokenizer.pad_token_id, flat=flat)
    if trainer_settings.precompute_ref_log_probs:
        reference = ref_model if ref_model is not None else model
        disable = ref_model is None and settings.trains_adapter
        batch = trainer_settings.per_device_eval_batch_size
        train_features = precompute_reference_logps(
            train_features, reference, collator, batch, disable, REFERENCE_KEYS
        )
        val_features = precompute_reference_logps(
            val_features, reference, collator, batch, disable, REFERENCE_KEYS
        )
        ref_model = None
        logger.info(
            "precomputed the reference log-probs of %d pairs", len(train_features) + len(val_features)
        )

    callbacks: list[Any] = [MetricsLogCallback(folder / "metrics.jsonl")]
    if trainer_settings.sync_ref_settings.sync_ref_model:
        callbacks.append(SyncRefModelCallback(ref_model, trainer_settings.sync_ref_settings))
    trainer = DpoTrainer(
        model=model,
        ref_model=ref_model,
        loss_settings=trainer_settings.loss_settings,
        average_log_prob=trainer_settings.average_log_prob,
        args=training_arguments(settings, folder),
        train_dataset=train_features,
        eval_dataset=val_features or None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    logger.info(
        "loss %s; reference: %s",
        trainer_settings.loss_settings.loss_type,
        "none"
        if not settings.uses_reference
        else "precomputed"
        if trainer_settings.precompute_ref_log_probs
        else "separate model"
        if ref_model is not None
        else "the model with its adapter disabled",
    )
    attach_chat_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder)
    attach_loggers(trainer, settings)
    run_training(trainer, resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "model", final)
