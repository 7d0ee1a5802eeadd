"""DPO and its relatives on pair preferences (full or PEFT), against a frozen or precomputed reference."""

from __future__ import annotations

import logging

from turbo.data.pair_preferences import PairCollator, build_pair_samples
from turbo.modeling.loading import load_model
from turbo.modeling.varlen import attend_by_offsets
from turbo.pipelines.train.common import end_run, policy_tokenizer, share_prompts, start_experiment
from turbo.pipelines.train.evaluation import attach_chat_cherry_picks
from turbo.pipelines.train.reference import (
    dpo_trainer_arguments,
    load_frozen,
    load_reference,
    log_reference,
    precompute_references,
)
from turbo.pipelines.train.splits import load_splits, pair_previews
from turbo.settings.pipelines.train.dpo import DpoExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: DpoExperimentSettings) -> None:

    from turbo.trainers.dpo import REFERENCE_KEYS, DpoTrainer

    folder, resume = start_experiment(settings)
    trainer_settings = settings.trainer_settings
    need_margin = trainer_settings.loss_settings.uses_margin

    tokenizer = policy_tokenizer(settings)
    train, val, cherry_picks = load_splits(
        settings,
        folder,
        tokenizer,
        lambda dataset: build_pair_samples(dataset, tokenizer, seed=settings.seed, need_margin=need_margin),
        previews=lambda samples: pair_previews(samples, tokenizer),
    )
    train_features = [sample.features() for sample in train]
    val_features = [sample.features() for sample in val]

    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    ref_model = load_reference(settings, tokenizer)
    sft_model = load_frozen(settings, tokenizer) if trainer_settings.use_sft_model else None
    # padding-free batches where the attention keeps each row to itself (as in train_sft); LD-DPO
    # (lc_alpha) pairs the rows [chosen; rejected] of padded batches
    peft = settings.model_settings.peft_settings
    flat = trainer_settings.padding_free and trainer_settings.lc_alpha is None
    flat = flat and (peft is None or not peft.virtual_tokens)
    flat = flat and attend_by_offsets(model, ref_model, sft_model)
    # each pair's prompt once, its two answers after it (turbo.data.shared_prompts)
    shared = share_prompts(trainer_settings, flat, model, ref_model, sft_model)
    logger.info(
        "pairs scored %s",
        "padding-free, each prompt once" if shared else "padding-free" if flat else "in padded rows",
    )
    collator = PairCollator(tokenizer.pad_token_id, flat=flat, shared=shared)
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
    end_run(trainer, settings, tokenizer, folder, resume)
