"""Supervised fine-tuning on chat data with `transformers.Trainer` (+ peft)."""

from __future__ import annotations

import logging

from turbo.data.chat import build_chat_samples
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    check_logging_backend,
    prepare_experiment_folder,
    resume_checkpoint,
    save_final,
    training_arguments,
    write_data_reports,
)
from turbo.settings.pipelines.train.sft import SftExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: SftExperimentSettings) -> None:
    from transformers import DataCollatorForSeq2Seq, Trainer, set_seed

    from turbo.trainers.callbacks import ChatCherryPickCallback, MetricsLogCallback

    check_logging_backend(settings)
    folder = prepare_experiment_folder(settings)
    resume = resume_checkpoint(settings, folder)
    set_seed(settings.training_seed)

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
    write_data_reports(folder, reports, train, tokenizer)

    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    callbacks = [MetricsLogCallback(folder / "metrics.jsonl")]
    if settings.cherry_pick_settings is not None:
        callbacks.append(
            ChatCherryPickCallback(
                settings.cherry_pick_settings, cherry_picks, tokenizer, folder / "cherry_picks"
            )
        )
    trainer = Trainer(
        model=model,
        args=training_arguments(settings, folder),
        train_dataset=[sample.features() for sample in train],
        eval_dataset=[sample.features() for sample in val] or None,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "model", final)
