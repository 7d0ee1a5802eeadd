"""Steps train_multimodal and train_multimodal_dpo share, as plain functions: the parts' shapes, the
tokenizer with modality tokens, the samples with the readers of their media, the model, the parameter
report and learning rates per part, and the end of the run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from turbo.data.multimodal import add_modality_tokens, build_multimodal_samples
from turbo.data.report import DatasetReport
from turbo.io import write_json
from turbo.modeling.loading import load_model
from turbo.modeling.multimodal.parts import build_readers, check_shapes
from turbo.pipelines.multimodal_model import assemble_multimodal, modality_token_ids
from turbo.pipelines.train.common import end_run, is_main_process, policy_tokenizer
from turbo.pipelines.train.evaluation import attach_multimodal_cherry_picks
from turbo.pipelines.train.splits import load_splits
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


def write_parameter_report(folder: Path, model: Any) -> None:
    """parameters.json (parameter_report), by the main process only: another rank writing it into a
    folder the main one has not set up yet makes that folder look like someone else's."""
    if is_main_process():
        write_json(folder / "parameters.json", parameter_report(model))


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
    tokenizer = policy_tokenizer(settings)
    added = add_modality_tokens(tokenizer, settings.train_dataset_settings)
    if added:
        logger.info("added modality tokens to the tokenizer: %s", ", ".join(added))
    return tokenizer


class MultimodalSamples(NamedTuple):
    """The samples of each split with the readers of their media."""

    train: list[Any]
    val: list[Any]
    cherry_picks: list[Any]
    readers: dict[str, Any]
    val_readers: dict[str, Any]
    cherry_readers: dict[str, Any]


def multimodal_samples(
    settings: MultimodalExperimentSettings,
    folder: Path,
    tokenizer: Any,
    build: Callable[[Any, Any, dict[str, Any]], tuple[list[Any], DatasetReport]],
    previews: Callable[[list[Any]], list[str]],
) -> MultimodalSamples:
    """The train and val samples, made by `build(dataset settings, tokenizer, readers)`, and the
    cherry picks (their modality tokens added to the tokenizer), each with the readers of its media;
    then data_ratio, data_train_split_ratio, data_debug_path and the data report (load_splits)."""
    readers = build_readers(settings.train_dataset_settings.readers)
    val_settings, cherry = settings.val_dataset_settings, settings.cherry_pick_settings
    val_readers = readers if val_settings is None else build_readers(val_settings.readers)
    cherry_readers = readers if cherry is None else build_readers(cherry.dataset_settings.readers)

    def build_cherry_picks(dataset: Any) -> tuple[list[Any], DatasetReport]:
        add_modality_tokens(tokenizer, dataset)
        return build_multimodal_samples(
            dataset, tokenizer, cherry_readers, seed=settings.seed, inference=True
        )

    splits = load_splits(
        settings,
        folder,
        tokenizer,
        lambda dataset: build(dataset, tokenizer, val_readers if dataset is val_settings else readers),
        cherry=build_cherry_picks,
        previews=previews,
        token_ids=modality_token_ids(tokenizer, settings.train_dataset_settings),
    )
    return MultimodalSamples(*splits, readers, val_readers, cherry_readers)


def train_and_save(
    trainer: Any,
    settings: MultimodalExperimentSettings,
    data: MultimodalSamples,
    tokenizer: Any,
    folder: Path,
    resume: str | None,
) -> None:
    """Cherry picks (with their media) on the built trainer, then loggers, training and the final
    projectors, LM and tokenizer."""
    attach_multimodal_cherry_picks(
        trainer, settings, data.cherry_picks, data.cherry_readers, tokenizer, folder
    )
    end_run(trainer, settings, tokenizer, folder, resume, "projectors, LM and tokenizer")


def build_model(settings: MultimodalExperimentSettings, tokenizer: Any, shapes: dict) -> Any:
    """LM (+ PEFT), then encoders, then projectors (seeded), composed into one MultimodalModel."""
    dataset = settings.train_dataset_settings
    language_model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    if not settings.lang_decoder_update:
        language_model.requires_grad_(False)
    model = assemble_multimodal(
        language_model,
        settings.encoders,
        settings.projectors,
        shapes,
        dataset.n_modality_embeddings,
        modality_token_ids(tokenizer, dataset),
        settings.training_seed,
        dict(settings.modality_projector_initialization_mapping or {}),
    )
    model.projectors.requires_grad_(True)  # the new part: always trained
    return model
