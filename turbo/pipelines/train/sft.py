"""Supervised fine-tuning on chat data with `transformers.Trainer` (+ peft)."""

from __future__ import annotations

import logging

from turbo.data.chat import ChatSample, build_chat_samples
from turbo.data.packing import PackedCollator, pack_features
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    chat_previews,
    save_final,
    start_experiment,
    training_arguments,
    write_data_reports,
)
from turbo.pipelines.train.evaluation import attach_chat_cherry_picks, attach_loggers
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.pipelines.train.sft import SftExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: SftExperimentSettings) -> None:
    from transformers import DataCollatorForSeq2Seq, Trainer

    from turbo.trainers.callbacks import MetricsLogCallback

    folder, resume = start_experiment(settings)

    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    train, train_report = build_chat_samples(settings.train_dataset_settings, tokenizer, seed=settings.seed)
    reports = {"train": train_report}
    val = []
    if settings.val_dataset_settings is not None:
        val, reports["val"] = build_chat_samples(settings.val_dataset_settings, tokenizer, seed=settings.seed)
    cherry_picks = []
    if settings.cherry_pick_settings is not None:
        cherry_picks, reports["cherry_pick"] = build_chat_samples(
            settings.cherry_pick_settings.dataset_settings, tokenizer, seed=settings.seed, inference=True
        )
    write_data_reports(folder, reports, chat_previews(train, tokenizer))

    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    callbacks = [MetricsLogCallback(folder / "metrics.jsonl")]
    packing = settings.train_dataset_settings.pack_to_max_length or (
        settings.val_dataset_settings is not None and settings.val_dataset_settings.pack_to_max_length
    )
    collator = (
        PackedCollator(tokenizer.pad_token_id)  # takes unpacked rows too
        if packing
        else DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    )
    trainer = Trainer(
        model=model,
        args=training_arguments(settings, folder),
        train_dataset=features(train, settings.train_dataset_settings),
        eval_dataset=features(val, settings.val_dataset_settings) or None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    attach_chat_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder)
    attach_loggers(trainer, settings)
    trainer.train(resume_from_checkpoint=resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "model", final)


def features(samples: list[ChatSample], settings: ChatDatasetSettings | None) -> list[dict[str, list[int]]]:
    """The trainer's rows: one per sample, or several samples per row with pack_to_max_length."""
    rows = [sample.features() for sample in samples]
    if settings is None or not settings.pack_to_max_length or not rows:
        return rows
    assert settings.max_tokens_count is not None  # the settings require it with packing
    packed = pack_features(rows, settings.max_tokens_count)
    logger.info(
        "packed %d samples into %d rows of up to %d tokens", len(rows), len(packed), settings.max_tokens_count
    )
    return packed
