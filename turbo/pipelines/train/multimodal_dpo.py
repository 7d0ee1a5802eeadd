"""DPO and its relatives on a multimodal model (encoder -> projector -> LM), pair preferences with images."""

from __future__ import annotations

from functools import partial
from typing import Any

from turbo.data.multimodal_pair_preferences import MultimodalPairCollator, build_multimodal_pair_samples
from turbo.pipelines.train.common import start_experiment
from turbo.pipelines.train.multimodal_steps import (
    build_model,
    multimodal_samples,
    multimodal_tokenizer,
    part_learning_rates,
    part_shapes,
    train_and_save,
    write_parameter_report,
)
from turbo.pipelines.train.reference import (
    dpo_trainer_arguments,
    load_reference,
    log_reference,
    precompute_references,
)
from turbo.pipelines.train.splits import pair_previews
from turbo.settings.pipelines.train.multimodal_dpo import MultimodalDpoExperimentSettings


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

    from turbo.trainers.dpo import REFERENCE_KEYS, DpoTrainer

    trainer_settings = settings.trainer_settings
    need_margin = trainer_settings.loss_settings.uses_margin
    shapes = part_shapes(settings)
    folder, resume = start_experiment(settings)

    tokenizer = multimodal_tokenizer(settings)
    build = partial(build_multimodal_pair_samples, seed=settings.seed, need_margin=need_margin)
    data = multimodal_samples(
        settings, folder, tokenizer, build, lambda samples: pair_previews(samples, tokenizer)
    )
    train_features = [sample.features() for sample in data.train]
    val_features = [sample.features() for sample in data.val]

    model = build_model(settings, tokenizer, shapes)  # type: ignore[arg-type]
    write_parameter_report(folder, model)
    ref_model, start = build_reference(settings, model, tokenizer)
    collator = MultimodalPairCollator(tokenizer.pad_token_id, data.readers)
    if trainer_settings.precompute_ref_log_probs:
        train_features, val_features = precompute_references(
            trainer_settings,
            (train_features, val_features),
            ref_model if ref_model is not None else start,
            ref_model is None,
            (collator, MultimodalPairCollator(tokenizer.pad_token_id, data.val_readers)),
            REFERENCE_KEYS,
        )
        ref_model = start = None

    trainer = DpoTrainer(
        model=model,
        start=start,
        part_learning_rates=part_learning_rates(settings),
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
        "a separate LM",
        "the policy's LM (adapter disabled) with the starting projectors",
    )
    train_and_save(trainer, settings, data, tokenizer, folder, resume)
