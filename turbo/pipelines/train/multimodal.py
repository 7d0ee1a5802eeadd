"""LLaVA-style training: encoder (frozen by default) -> projector -> spliced into the LM's embeddings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from turbo.data.multimodal import add_modality_tokens, build_multimodal_samples
from turbo.data.report import DatasetReport
from turbo.io import write_json
from turbo.modeling.loading import load_model
from turbo.modeling.multimodal.parts import (
    build_encoders,
    build_projectors,
    build_readers,
    check_shapes,
    load_projector_weights,
)
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    chat_previews,
    run_training,
    save_final,
    start_experiment,
    training_arguments,
    training_data,
    write_data_reports,
)
from turbo.pipelines.train.evaluation import attach_loggers, attach_multimodal_cherry_picks
from turbo.settings.pipelines.train.multimodal import MultimodalExperimentSettings

logger = logging.getLogger("turbo")


def parameter_report(model: Any) -> dict[str, dict[str, int]]:
    """Trainable and frozen parameter counts per part (language_model, projectors.<m>, encoders.<m>)."""
    report: dict[str, dict[str, int]] = {}
    for name, parameter in model.named_parameters():
        parts = name.split(".")
        part = parts[0] if parts[0] == "language_model" else ".".join(parts[:2])
        counts = report.setdefault(part, {"trainable": 0, "frozen": 0})
        counts["trainable" if parameter.requires_grad else "frozen"] += parameter.numel()
    return report


def part_learning_rates(settings: MultimodalExperimentSettings) -> dict[str, float]:
    """The learning rate of each part: the pretrained ones (language model, encoders) at
    learning_rate_pretraining_components where set, the new ones (projectors) at the trainer's rate;
    projector_learning_rate and encoder_learning_rate win where set."""
    base = settings.trainer_settings.learning_rate
    pretrained = settings.learning_rate_pretraining_components
    pretrained = base if pretrained is None else pretrained
    projector, encoder = settings.projector_learning_rate, settings.encoder_learning_rate
    return {
        "language_model.": pretrained,
        "projectors.": base if projector is None else projector,
        "encoders.": pretrained if encoder is None else encoder,
    }


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


def part_shapes(settings: MultimodalExperimentSettings) -> dict:
    """The encoders' and projectors' shapes, checked against the training dataset before anything loads."""
    return check_shapes(
        settings.encoders,
        settings.projectors,
        settings.train_dataset_settings.n_modality_embeddings,
        "train_dataset_settings.",
    )


def multimodal_tokenizer(settings: MultimodalExperimentSettings) -> Any:
    """The tokenizer, with the training dataset's modality tokens added."""
    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    added = add_modality_tokens(tokenizer, settings.train_dataset_settings)
    if added:
        logger.info("added modality tokens to the tokenizer: %s", ", ".join(added))
    return tokenizer


def modality_token_ids(tokenizer: Any, dataset: Any) -> dict[str, int]:
    """Modality -> the id of its embedding token."""
    return {m: tokenizer.convert_tokens_to_ids(t) for m, t in dataset.modality_token_mapping.items()}


class MultimodalSamples(NamedTuple):
    """The samples of each split with the readers of their media, and the data reports."""

    train: list[Any]
    val: list[Any]
    cherry_picks: list[Any]
    readers: dict[str, Any]
    val_readers: dict[str, Any]
    cherry_readers: dict[str, Any]
    reports: dict[str, DatasetReport]


def multimodal_samples(
    settings: MultimodalExperimentSettings,
    tokenizer: Any,
    build: Callable[[Any, Any, dict[str, Any]], tuple[list[Any], DatasetReport]],
) -> MultimodalSamples:
    """The train and val samples, made by `build(dataset settings, tokenizer, readers)`, and the
    cherry picks (their modality tokens added to the tokenizer), then data_ratio,
    data_train_split_ratio and data_debug_path applied (training_data)."""
    dataset_settings = settings.train_dataset_settings
    readers = build_readers(dataset_settings.readers)
    reports: dict[str, DatasetReport] = {}
    train, reports["train"] = build(dataset_settings, tokenizer, readers)
    val, val_readers = [], readers
    if settings.val_dataset_settings is not None:
        val_readers = build_readers(settings.val_dataset_settings.readers)
        val, reports["val"] = build(settings.val_dataset_settings, tokenizer, val_readers)
    cherry_picks, cherry_readers = [], readers
    if settings.cherry_pick_settings is not None:
        add_modality_tokens(tokenizer, settings.cherry_pick_settings.dataset_settings)
        cherry_readers = build_readers(settings.cherry_pick_settings.dataset_settings.readers)
        cherry_picks, reports["cherry_pick"] = build_multimodal_samples(
            settings.cherry_pick_settings.dataset_settings,
            tokenizer,
            cherry_readers,
            seed=settings.seed,
            inference=True,
        )
    token_ids = modality_token_ids(tokenizer, dataset_settings)
    train, val = training_data(settings, tokenizer, train, val, token_ids)
    return MultimodalSamples(train, val, cherry_picks, readers, val_readers, cherry_readers, reports)


def train_and_save(
    trainer: Any,
    settings: MultimodalExperimentSettings,
    data: MultimodalSamples,
    tokenizer: Any,
    folder: Path,
    resume: str | None,
) -> None:
    """Cherry picks (with their media) and loggers on the built trainer, then training and the final
    projectors, LM and tokenizer."""
    attach_multimodal_cherry_picks(
        trainer, settings, data.cherry_picks, data.cherry_readers, tokenizer, folder
    )
    attach_loggers(trainer, settings)
    run_training(trainer, resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the projectors, the LM and the tokenizer to %s", final)


def build_model(settings: MultimodalExperimentSettings, tokenizer: Any, shapes: dict) -> Any:
    """LM (+ PEFT), then encoders, then projectors (seeded), composed into one MultimodalModel."""
    from turbo.modeling.multimodal.model import MultimodalModel

    dataset = settings.train_dataset_settings
    language_model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    if not settings.lang_decoder_update:
        language_model.requires_grad_(False)
    dtype = language_model.get_input_embeddings().weight.dtype
    encoders = build_encoders(settings.encoders, dtype)
    projectors = build_projectors(
        settings.projectors,
        shapes,
        language_model.get_input_embeddings().weight.shape[1],
        dataset.n_modality_embeddings,
        settings.training_seed,
        dtype,
    )
    for modality, path in (settings.modality_projector_initialization_mapping or {}).items():
        if path is not None:
            load_projector_weights(projectors, Path(path), modality)
    for projector in projectors.values():
        projector.requires_grad_(True)  # the new part: always trained
    return MultimodalModel(language_model, encoders, projectors, modality_token_ids(tokenizer, dataset))


def run(settings: MultimodalExperimentSettings) -> None:

    from turbo.data.multimodal_batches import MultimodalTorchDataset
    from turbo.data.multimodal_packing import MultimodalRowCollator
    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.multimodal import MultimodalTrainer

    dataset_settings = settings.train_dataset_settings
    shapes = part_shapes(settings)
    folder, resume = start_experiment(settings)

    tokenizer = multimodal_tokenizer(settings)
    data = multimodal_samples(settings, tokenizer, partial(build_multimodal_samples, seed=settings.seed))
    write_data_reports(folder, data.reports, chat_previews(data.train, tokenizer))

    model = build_model(settings, tokenizer, shapes)
    write_json(folder / "parameters.json", parameter_report(model))
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
        callbacks=[MetricsLogCallback(folder / "metrics.jsonl")],
        part_learning_rates=rates,
    )
    train_and_save(trainer, settings, data, tokenizer, folder, resume)
