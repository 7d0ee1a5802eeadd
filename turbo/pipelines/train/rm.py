"""Reward-model training on pair preferences (full or PEFT): -log sigmoid(r_w - r_l)."""

from __future__ import annotations

import logging

from turbo.data.chat import build_chat_samples
from turbo.data.pair_preferences import PairCollator, build_pair_samples
from turbo.errors import ModelError
from turbo.modeling.loading import load_model
from turbo.pipelines.train.common import (
    end_run,
    metrics_log,
    policy_tokenizer,
    start_experiment,
    training_arguments,
)
from turbo.pipelines.train.evaluation import attach_score_cherry_picks
from turbo.pipelines.train.splits import load_splits, pair_previews
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.pipelines.train.rm import RmExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: RmExperimentSettings) -> None:

    from turbo.trainers.rm import RmTrainer

    folder, resume = start_experiment(settings)

    tokenizer = policy_tokenizer(settings)
    train, val, cherry_picks = load_splits(
        settings,
        folder,
        tokenizer,
        lambda dataset: build_pair_samples(dataset, tokenizer, seed=settings.seed),
        cherry=lambda dataset: (
            build_pair_samples if isinstance(dataset, PairPreferencesDatasetSettings) else build_chat_samples
        )(dataset, tokenizer, seed=settings.seed),
        previews=lambda samples: pair_previews(samples, tokenizer),
    )

    model_settings = settings.model_settings
    if "num_labels" not in model_settings.model_kwargs:  # a causal LM checkpoint gets a new 1-output head
        model_settings = model_settings.model_copy(
            update={"model_kwargs": {**model_settings.model_kwargs, "num_labels": 1}}
        )
    model = load_model(model_settings, tokenizer, settings.tokenizer_settings)
    if model.config.num_labels != 1:
        raise ModelError(
            f"{model_settings.model_path}: a reward model has one output, "
            f"this one has {model.config.num_labels}"
        )
    trainer = RmTrainer(
        model=model,
        args=training_arguments(settings, folder),
        train_dataset=[sample.features() for sample in train],
        eval_dataset=[sample.features() for sample in val] or None,
        data_collator=PairCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[metrics_log(folder)],
    )
    attach_score_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder, predict=False)
    end_run(trainer, settings, tokenizer, folder, resume)
