"""KTO on unpaired desirable / undesirable answers (full or PEFT), against a frozen reference."""

from __future__ import annotations

import logging

from turbo.data.kto import KtoCollator, build_kto_samples, kto_features
from turbo.modeling.loading import load_model
from turbo.pipelines.train.common import end_run, policy_tokenizer, start_experiment, training_arguments
from turbo.pipelines.train.evaluation import attach_chat_cherry_picks
from turbo.pipelines.train.reference import load_frozen, precompute_references, reference_callbacks
from turbo.pipelines.train.splits import load_splits
from turbo.settings.pipelines.train.kto import KtoExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: KtoExperimentSettings) -> None:

    from turbo.trainers.kto import REFERENCE_KEYS, KtoTrainer

    folder, resume = start_experiment(settings)
    trainer_settings = settings.trainer_settings

    tokenizer = policy_tokenizer(settings)
    train, val, cherry_picks = load_splits(
        settings, folder, tokenizer, lambda dataset: build_kto_samples(dataset, tokenizer, seed=settings.seed)
    )
    max_tokens = settings.train_dataset_settings.chat_settings.max_tokens_count
    val_max = max_tokens
    if settings.val_dataset_settings is not None:
        val_max = settings.val_dataset_settings.chat_settings.max_tokens_count
    train_features = kto_features(train, settings.seed, max_tokens)
    val_features = kto_features(val, settings.seed, val_max) if val else []

    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    collator = KtoCollator(tokenizer.pad_token_id)
    # the starting model without a new adapter: a loaded adapter stays on, frozen
    ref_model = load_frozen(settings, tokenizer) if trainer_settings.use_ref_model else None
    if trainer_settings.precompute_ref_log_probs:
        train_features, val_features = precompute_references(
            trainer_settings,
            (train_features, val_features),
            ref_model if ref_model is not None else model,
            ref_model is None and settings.trains_adapter,
            (collator, collator),
            REFERENCE_KEYS,
        )
        ref_model = None

    trainer = KtoTrainer(
        model=model,
        ref_model=ref_model,
        args=training_arguments(settings, folder),
        train_dataset=train_features,
        eval_dataset=val_features or None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=reference_callbacks(trainer_settings, ref_model, folder),
        beta=trainer_settings.beta,
        desirable_weight=trainer_settings.desirable_weight,
        undesirable_weight=trainer_settings.undesirable_weight,
    )
    attach_chat_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder)
    end_run(trainer, settings, tokenizer, folder, resume)
