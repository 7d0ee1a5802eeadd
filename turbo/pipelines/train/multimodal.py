"""LLaVA-style training: encoder (frozen by default) -> projector -> spliced into the LM's embeddings."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from turbo.data.multimodal import build_multimodal_samples
from turbo.pipelines.train.common import metrics_log, start_experiment, training_arguments
from turbo.pipelines.train.multimodal_steps import (
    build_model,
    multimodal_samples,
    multimodal_tokenizer,
    part_learning_rates,
    part_shapes,
    train_and_save,
    write_parameter_report,
)
from turbo.pipelines.train.splits import chat_previews
from turbo.settings.pipelines.train.multimodal import MultimodalExperimentSettings

logger = logging.getLogger("turbo")


def joined(samples: list[Any], dataset: Any) -> list[Any]:
    """The trainer's rows: the samples, or several per row with pack_to_max_length or
    dataset_concatenate_samples (a held-out split follows the training dataset's choice)."""
    from turbo.data.multimodal_packing import concatenate_multimodal, pack_multimodal

    if dataset is None or not samples or dataset.max_tokens_count is None:
        return samples
    if dataset.pack_to_max_length:
        rows = pack_multimodal(samples, dataset.max_tokens_count)
    elif dataset.dataset_concatenate_samples:
        rows = concatenate_multimodal(samples, dataset.max_tokens_count)
    else:
        return samples
    logger.info(
        "joined %d samples into %d rows of up to %d tokens", len(samples), len(rows), dataset.max_tokens_count
    )
    return rows


def run(settings: MultimodalExperimentSettings) -> None:

    from turbo.data.multimodal_batches import MultimodalTorchDataset
    from turbo.data.multimodal_packing import MultimodalRowCollator
    from turbo.trainers.multimodal import MultimodalTrainer

    dataset_settings = settings.train_dataset_settings
    shapes = part_shapes(settings)
    folder, resume = start_experiment(settings)

    tokenizer = multimodal_tokenizer(settings)
    data = multimodal_samples(
        settings,
        folder,
        tokenizer,
        partial(build_multimodal_samples, seed=settings.seed),
        lambda samples: chat_previews(samples, tokenizer),
    )

    model = build_model(settings, tokenizer, shapes)
    write_parameter_report(folder, model)
    rates = part_learning_rates(settings)
    trainer = MultimodalTrainer(
        model=model,
        args=training_arguments(settings, folder),
        train_dataset=MultimodalTorchDataset(joined(data.train, dataset_settings), data.readers),
        eval_dataset=MultimodalTorchDataset(joined(data.val, settings.val_dataset_settings), data.val_readers)
        if data.val
        else None,
        data_collator=MultimodalRowCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[metrics_log(folder)],
        part_learning_rates=rates,
    )
    train_and_save(trainer, settings, data, tokenizer, folder, resume)
