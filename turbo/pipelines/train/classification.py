"""Sequence-classification training with focal loss; eval reports accuracy, F1 and friends."""

from __future__ import annotations

import logging
from typing import Any

from turbo.data.classification import build_classification_samples, check_labels
from turbo.errors import SettingsError
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    run_training,
    save_final,
    start_experiment,
    training_arguments,
    write_data_reports,
)
from turbo.settings.pipelines.train.classification import ClassificationExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: ClassificationExperimentSettings) -> None:
    from transformers import DataCollatorWithPadding

    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.classification import ClassificationTrainer
    from turbo.trainers.losses.focal import balanced_class_weights
    from turbo.trainers.scoring_cherry_picks import ScoringCherryPickCallback, class_scores, record_row

    folder, resume = start_experiment(settings)

    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    train, train_report = build_classification_samples(
        settings.train_dataset_settings, tokenizer, seed=settings.seed, require_labels=True
    )
    reports = {"train": train_report}
    val = []
    if settings.val_dataset_settings is not None:
        val, reports["val"] = build_classification_samples(
            settings.val_dataset_settings, tokenizer, seed=settings.seed, require_labels=True
        )
    cherry_items = []
    if settings.cherry_pick_settings is not None:
        picks, reports["cherry_pick"] = build_classification_samples(
            settings.cherry_pick_settings.dataset_settings,
            tokenizer,
            seed=settings.seed,
            require_labels=False,
        )
        cherry_items = [(record_row(sample), [sample.input_ids]) for sample in picks]
    write_data_reports(folder, reports)

    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    num_labels = model.config.num_labels
    check_labels(train + val, num_labels)
    loss_settings = settings.trainer_settings.loss_settings
    alpha = loss_settings.alpha
    if alpha == "auto":
        alpha = balanced_class_weights([sample.label for sample in train], num_labels)
        logger.info("balanced class weights (alpha): %s", alpha)
    elif isinstance(alpha, list) and len(alpha) != num_labels:
        raise SettingsError(
            f"trainer_settings.loss_settings.alpha has {len(alpha)} weights but the model has "
            f"{num_labels} labels; give one weight per label"
        )
    callbacks: list[Any] = [MetricsLogCallback(folder / "metrics.jsonl")]
    if cherry_items:
        callbacks.append(
            ScoringCherryPickCallback(cherry_items, class_scores, tokenizer, folder / "cherry_picks")
        )
    trainer = ClassificationTrainer(
        model=model,
        args=training_arguments(settings, folder),
        train_dataset=[sample.features() for sample in train],
        eval_dataset=[sample.features() for sample in val] or None,
        data_collator=DataCollatorWithPadding(tokenizer, padding=True),
        processing_class=tokenizer,
        callbacks=callbacks,
        gamma=loss_settings.gamma,
        alpha=alpha,
    )
    run_training(trainer, resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "model", final)
