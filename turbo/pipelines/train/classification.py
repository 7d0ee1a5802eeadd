"""Sequence-classification training with focal loss; eval reports accuracy, F1 and friends."""

from __future__ import annotations

import logging

from turbo.data.classification import build_classification_samples, check_labels
from turbo.errors import SettingsError
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    save_final,
    start_experiment,
    training_arguments,
    write_data_reports,
)
from turbo.pipelines.train.evaluation import attach_loggers, attach_score_cherry_picks
from turbo.settings.pipelines.train.classification import ClassificationExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: ClassificationExperimentSettings) -> None:
    from transformers import DataCollatorWithPadding

    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.classification import ClassificationTrainer
    from turbo.trainers.losses.focal import balanced_class_weights

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
    cherry_picks = []
    if settings.cherry_pick_settings is not None:
        cherry_picks, reports["cherry_pick"] = build_classification_samples(
            settings.cherry_pick_settings.dataset_settings,
            tokenizer,
            seed=settings.seed,
            require_labels=False,
        )
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
    trainer = ClassificationTrainer(
        model=model,
        args=training_arguments(settings, folder),
        train_dataset=[sample.features() for sample in train],
        eval_dataset=[sample.features() for sample in val] or None,
        data_collator=DataCollatorWithPadding(tokenizer, padding=True),
        processing_class=tokenizer,
        callbacks=[MetricsLogCallback(folder / "metrics.jsonl")],
        gamma=loss_settings.gamma,
        alpha=alpha,
    )
    attach_score_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder, predict=True)
    attach_loggers(trainer, settings)
    trainer.train(resume_from_checkpoint=resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "model", final)
