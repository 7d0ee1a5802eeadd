"""KTO on unpaired desirable / undesirable answers (full or PEFT), against a frozen reference."""

from __future__ import annotations

import logging
from typing import Any

from turbo.data.chat import build_chat_samples
from turbo.data.kto import KtoCollator, build_kto_samples, kto_features
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    run_training,
    save_final,
    start_experiment,
    training_arguments,
    training_data,
    write_data_reports,
)
from turbo.pipelines.train.evaluation import attach_chat_cherry_picks, attach_loggers
from turbo.settings.pipelines.train.kto import KtoExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: KtoExperimentSettings) -> None:

    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.dpo import SyncRefModelCallback
    from turbo.trainers.kto import REFERENCE_KEYS, KtoTrainer
    from turbo.trainers.logps import precompute_reference_logps

    folder, resume = start_experiment(settings)
    trainer_settings = settings.trainer_settings

    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    train, train_report = build_kto_samples(settings.train_dataset_settings, tokenizer, seed=settings.seed)
    reports = {"train": train_report}
    max_tokens = settings.train_dataset_settings.chat_settings.max_tokens_count
    val, val_max = [], max_tokens
    if settings.val_dataset_settings is not None:
        val, reports["val"] = build_kto_samples(settings.val_dataset_settings, tokenizer, seed=settings.seed)
        val_max = settings.val_dataset_settings.chat_settings.max_tokens_count
    train, val = training_data(settings, tokenizer, train, val)
    train_features = kto_features(train, settings.seed, max_tokens)
    val_features = kto_features(val, settings.seed, val_max) if val else []
    cherry_picks = []
    if settings.cherry_pick_settings is not None:
        cherry_picks, reports["cherry_pick"] = build_chat_samples(
            settings.cherry_pick_settings.dataset_settings, tokenizer, seed=settings.seed, inference=True
        )
    write_data_reports(folder, reports)

    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    collator = KtoCollator(tokenizer.pad_token_id)
    ref_model = None
    if trainer_settings.use_ref_model:
        # the starting model without a new adapter: a loaded adapter stays on, frozen
        ref_settings = settings.model_settings.model_copy(
            update={"peft_settings": None, "is_trainable": False}
        )
        ref_model = load_model(ref_settings, tokenizer, settings.tokenizer_settings)
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
            "precomputed the reference log-probs of %d samples", len(train_features) + len(val_features)
        )

    callbacks: list[Any] = [MetricsLogCallback(folder / "metrics.jsonl")]
    if trainer_settings.sync_ref_settings.sync_ref_model:
        callbacks.append(SyncRefModelCallback(ref_model, trainer_settings.sync_ref_settings))
    trainer = KtoTrainer(
        model=model,
        ref_model=ref_model,
        args=training_arguments(settings, folder),
        train_dataset=train_features,
        eval_dataset=val_features or None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
        beta=trainer_settings.beta,
        desirable_weight=trainer_settings.desirable_weight,
        undesirable_weight=trainer_settings.undesirable_weight,
    )
    attach_chat_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder)
    attach_loggers(trainer, settings)
    run_training(trainer, resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "model", final)
