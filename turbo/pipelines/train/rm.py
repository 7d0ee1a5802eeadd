"""Reward-model training on pair preferences (full or PEFT): -log sigmoid(r_w - r_l)."""

from __future__ import annotations

import logging

from turbo.data.chat import build_chat_samples
from turbo.data.pair_preferences import PairCollator, build_pair_samples
from turbo.errors import ModelError
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
from turbo.pipelines.train.dpo import pair_previews
from turbo.pipelines.train.evaluation import attach_loggers, attach_score_cherry_picks
from turbo.settings.pipelines.train.rm import RmExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: RmExperimentSettings) -> None:

    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.rm import RmTrainer

    folder, resume = start_experiment(settings)

    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    train, train_report = build_pair_samples(settings.train_dataset_settings, tokenizer, seed=settings.seed)
    reports = {"train": train_report}
    val = []
    if settings.val_dataset_settings is not None:
        val, reports["val"] = build_pair_samples(settings.val_dataset_settings, tokenizer, seed=settings.seed)
    cherry_picks = []
    if settings.cherry_pick_settings is not None:
        cherry_data = settings.cherry_pick_settings.dataset_settings
        build = build_pair_samples if cherry_data.dataset_type == "pair_preferences" else build_chat_samples
        cherry_picks, reports["cherry_pick"] = build(cherry_data, tokenizer, seed=settings.seed)
    train, val = training_data(settings, tokenizer, train, val)
    write_data_reports(folder, reports, pair_previews(train, tokenizer))

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
        callbacks=[MetricsLogCallback(folder / "metrics.jsonl")],
    )
    attach_score_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder, predict=False)
    attach_loggers(trainer, settings)
    run_training(trainer, resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info(
        "saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "reward model", final
    )
