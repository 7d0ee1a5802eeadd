"""DPO and its relatives on a multimodal model (encoder -> projector -> LM), pair preferences with images."""

from __future__ import annotations

import logging
from typing import Any

from turbo.data.multimodal import add_modality_tokens, build_multimodal_samples
from turbo.data.multimodal_pair_preferences import MultimodalPairCollator, build_multimodal_pair_samples
from turbo.io import write_json
from turbo.modeling.multimodal.parts import build_readers, check_shapes
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    run_training,
    save_final,
    start_experiment,
    training_arguments,
    training_data,
    write_data_reports,
)
from turbo.pipelines.train.dpo import (
    dpo_callbacks,
    load_reference,
    log_reference,
    pair_previews,
    precompute_references,
)
from turbo.pipelines.train.evaluation import attach_loggers, attach_multimodal_cherry_picks
from turbo.pipelines.train.multimodal import build_model, parameter_report, part_learning_rates
from turbo.settings.pipelines.train.multimodal_dpo import MultimodalDpoExperimentSettings

logger = logging.getLogger("turbo")


def build_reference(settings: MultimodalDpoExperimentSettings, model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """(ref_model, start): a separate frozen reference (its own LM beside the starting projectors and
    encoders), or the policy's LM with its adapter disabled beside them; both None without a reference."""
    if not settings.uses_reference:
        return None, None
    language_model = load_reference(settings, tokenizer)  # type: ignore[arg-type]
    if language_model is not None:
        return model.frozen_start(language_model), None
    return None, model.frozen_start()


def run(settings: MultimodalDpoExperimentSettings) -> None:

    from turbo.trainers.multimodal_dpo import MultimodalDpoTrainer

    dataset_settings = settings.train_dataset_settings
    trainer_settings = settings.trainer_settings
    need_margin = trainer_settings.loss_settings.uses_margin
    shapes = check_shapes(
        settings.encoders,
        settings.projectors,
        dataset_settings.n_modality_embeddings,
        "train_dataset_settings.",
    )
    folder, resume = start_experiment(settings)

    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    added = add_modality_tokens(tokenizer, dataset_settings)  # type: ignore[arg-type]
    if added:
        logger.info("added modality tokens to the tokenizer: %s", ", ".join(added))
    readers = build_readers(dataset_settings.readers)
    train, train_report = build_multimodal_pair_samples(
        dataset_settings, tokenizer, readers, seed=settings.seed, need_margin=need_margin
    )
    reports = {"train": train_report}
    val, val_readers = [], readers
    if settings.val_dataset_settings is not None:
        val_readers = build_readers(settings.val_dataset_settings.readers)
        val, reports["val"] = build_multimodal_pair_samples(
            settings.val_dataset_settings, tokenizer, val_readers, seed=settings.seed, need_margin=need_margin
        )
    cherry_picks, cherry_readers = [], readers
    if settings.cherry_pick_settings is not None:
        add_modality_tokens(tokenizer, settings.cherry_pick_settings.dataset_settings)
        cherry_readers = build_readers(settings.cherry_pick_settings.dataset_settings.readers)
        cherry_picks, reports["cherry_pick"] = build_multimodal_samples(
            settings.cherry_pick_settings.dataset_settings,
            tokenizer,
            cherry_readers,
            seed=settings.seed,
            inference=True,
        )
    token_ids = {
        m: tokenizer.convert_tokens_to_ids(t) for m, t in dataset_settings.modality_token_mapping.items()
    }
    train, val = training_data(settings, tokenizer, train, val, token_ids)
    write_data_reports(folder, reports, pair_previews(train, tokenizer))
    train_features = [sample.features() for sample in train]
    val_features = [sample.features() for sample in val]

    model = build_model(settings, tokenizer, shapes)  # type: ignore[arg-type]
    write_json(folder / "parameters.json", parameter_report(model))
    ref_model, start = build_reference(settings, model, tokenizer)
    collator = MultimodalPairCollator(tokenizer.pad_token_id, readers)
    if trainer_settings.precompute_ref_log_probs:
        train_features, val_features = precompute_references(
            trainer_settings,
            train_features,
            val_features,
            ref_model if ref_model is not None else start,
            ref_model is None,
            (collator, MultimodalPairCollator(tokenizer.pad_token_id, val_readers)),
        )
        ref_model = start = None

    trainer = MultimodalDpoTrainer(
        model=model,
        ref_model=ref_model,
        start=start,
        loss_settings=trainer_settings.loss_settings,
        average_log_prob=trainer_settings.average_log_prob,
        lc_alpha=trainer_settings.lc_alpha,
        part_learning_rates=part_learning_rates(settings),
        args=training_arguments(settings, folder),
        train_dataset=train_features,
        eval_dataset=val_features or None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=dpo_callbacks(trainer_settings, ref_model, folder),
    )
    log_reference(
        trainer_settings,
        settings.uses_reference,
        ref_model,
        "a separate LM",
        "the policy's LM (adapter disabled) with the starting projectors",
    )
    attach_multimodal_cherry_picks(trainer, settings, cherry_picks, cherry_readers, tokenizer, folder)
    attach_loggers(trainer, settings)
    run_training(trainer, resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the projectors, the LM and the tokenizer to %s", final)
