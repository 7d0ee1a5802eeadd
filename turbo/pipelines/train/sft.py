"""Supervised fine-tuning on chat data with `transformers.Trainer` (+ peft)."""

from __future__ import annotations

import logging

from turbo.data.cache import cached
from turbo.data.chat import ChatSample, build_chat_samples
from turbo.data.packing import FlatCollator, pack_features
from turbo.modeling.loading import load_model
from turbo.modeling.varlen import attend_by_offsets
from turbo.pipelines.train.common import (
    end_run,
    metrics_log,
    policy_tokenizer,
    start_experiment,
    training_arguments,
)
from turbo.pipelines.train.evaluation import attach_chat_cherry_picks
from turbo.pipelines.train.splits import chat_previews, load_splits
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.pipelines.train.sft import SftExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: SftExperimentSettings) -> None:
    from transformers import DataCollatorForSeq2Seq

    from turbo.trainers.sft import SftTrainer, supports_chunked_loss

    folder, resume = start_experiment(settings)

    tokenizer = policy_tokenizer(settings)
    train, val, cherry_picks = load_splits(
        settings,
        folder,
        tokenizer,
        lambda dataset: cached(build_chat_samples, dataset, tokenizer, seed=settings.seed),
        previews=lambda samples: chat_previews(samples, tokenizer),
    )

    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    packing = settings.train_dataset_settings.pack_to_max_length or (
        settings.val_dataset_settings is not None and settings.val_dataset_settings.pack_to_max_length
    )
    # Padding-free batches (the batch in one row, each sample attending only to itself) wherever the
    # attention reads sample offsets: sdpa/eager models switch to turbo_varlen, flash-attention kernels
    # read them natively. Unpacked batches too: the same samples and loss without the pad positions.
    # Prompt-learning adapters prepend virtual tokens to each row, so they keep padded rows.
    peft = settings.model_settings.peft_settings
    virtual_tokens = peft is not None and peft.virtual_tokens
    flat = packing or (settings.trainer_settings.padding_free and not virtual_tokens)
    if flat and (attend_by_offsets(model) or packing):
        collator = FlatCollator()
    else:
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    chunked = (
        settings.trainer_settings.chunked_cross_entropy
        and not settings.trainer_settings.label_smoothing_factor
        and settings.trainer_settings.deepspeed is None
        and supports_chunked_loss(model)
    )
    trainer = SftTrainer(
        model=model,
        args=training_arguments(settings, folder),
        train_dataset=features(train, settings.train_dataset_settings),
        eval_dataset=features(val, settings.val_dataset_settings) or None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[metrics_log(folder)],
        chunked=chunked,
    )
    attach_chat_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder)
    end_run(trainer, settings, tokenizer, folder, resume)


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
