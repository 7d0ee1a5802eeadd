"""Sequence-classification training with focal loss; eval reports accuracy, F1 and friends."""

from __future__ import annotations

import logging

from turbo.data.classification import build_classification_samples, check_labels
from turbo.errors import SettingsError
from turbo.modeling.loading import load_model
from turbo.pipelines.train.common import (
    end_run,
    metrics_log,
    policy_tokenizer,
    start_experiment,
    training_arguments,
)
from turbo.pipelines.train.evaluation import attach_score_cherry_picks
from turbo.pipelines.train.splits import load_splits
from turbo.settings.pipelines.train.classification import ClassificationExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: ClassificationExperimentSettings) -> None:
    from transformers import DataCollatorWithPadding

    from turbo.trainers.classification import ClassificationTrainer
    from turbo.trainers.losses.focal import balanced_class_weights

    folder, resume = start_experiment(settings)

    tokenizer = policy_tokenizer(settings)
    train, val, cherry_picks = load_splits(
        settings,
        folder,
        tokenizer,
        lambda dataset: build_classification_samples(
            dataset, tokenizer, seed=settings.seed, require_labels=True
        ),
        cherry=lambda dataset: build_classification_samples(
            dataset, tokenizer, seed=settings.seed, require_labels=False
        ),
    )

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
        callbacks=[metrics_log(folder)],
        gamma=loss_settings.gamma,
        alpha=alpha,
    )
    attach_score_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder, predict=True)
    end_run(trainer, settings, tokenizer, folder, resume)
