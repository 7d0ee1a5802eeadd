"""LLaVA-style training: encoder (frozen by default) -> projector -> spliced into the LM's embeddings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from turbo.data.multimodal import add_modality_tokens, build_multimodal_samples
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
    write_data_reports,
)
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


def build_model(settings: MultimodalExperimentSettings, tokenizer: Any, shapes: dict) -> Any:
    """LM (+ PEFT), then encoders, then projectors (seeded), composed into one MultimodalModel."""
    from turbo.modeling.multimodal.model import MultimodalModel

    dataset = settings.train_dataset_settings
    language_model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
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
    token_ids = {m: tokenizer.convert_tokens_to_ids(t) for m, t in dataset.modality_token_mapping.items()}
    return MultimodalModel(language_model, encoders, projectors, token_ids)


def run(settings: MultimodalExperimentSettings) -> None:

    from turbo.data.multimodal_batches import MultimodalCollator, MultimodalTorchDataset
    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.multimodal import MultimodalTrainer

    dataset_settings = settings.train_dataset_settings
    shapes = check_shapes(
        settings.encoders,
        settings.projectors,
        dataset_settings.n_modality_embeddings,
        "train_dataset_settings.",
    )
    folder, resume = start_experiment(settings)

    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    added = add_modality_tokens(tokenizer, dataset_settings)
    if added:
        logger.info("added modality tokens to the tokenizer: %s", ", ".join(added))
    readers = build_readers(dataset_settings.readers)
    train, reports = [], {}
    train, reports["train"] = build_multimodal_samples(
        dataset_settings, tokenizer, readers, seed=settings.seed
    )
    val, val_readers = [], readers
    if settings.val_dataset_settings is not None:
        val_readers = build_readers(settings.val_dataset_settings.readers)
        val, reports["val"] = build_multimodal_samples(
            settings.val_dataset_settings, tokenizer, val_readers, seed=settings.seed
        )
    cherry_picks: list = []
    cherry_settings = settings.cherry_pick_settings
    if cherry_settings is not None:
        add_modality_tokens(tokenizer, cherry_settings.dataset_settings)
        cherry_readers = build_readers(cherry_settings.dataset_settings.readers)
        cherry_picks, reports["cherry_pick"] = build_multimodal_samples(
            cherry_settings.dataset_settings, tokenizer, cherry_readers, seed=settings.seed, inference=True
        )
    write_data_reports(folder, reports, chat_previews(train, tokenizer))  # type: ignore[arg-type]

    model = build_model(settings, tokenizer, shapes)
    write_json(folder / "parameters.json", parameter_report(model))
    base_rate = settings.trainer_settings.learning_rate
    rates = {
        "language_model.": base_rate,
        "projectors.": settings.projector_learning_rate
        if settings.projector_learning_rate is not None
        else base_rate,
        "encoders.": settings.encoder_learning_rate
        if settings.encoder_learning_rate is not None
        else base_rate,
    }
    callbacks: list[Any] = [MetricsLogCallback(folder / "metrics.jsonl")]
    if cherry_settings is not None:
        from turbo.pipelines.inference.multimodal import media_inputs
        from turbo.trainers.multimodal_cherry_picks import MultimodalCherryPickCallback

        callbacks.append(
            MultimodalCherryPickCallback(
                cherry_settings,
                cherry_picks,
                tokenizer,
                folder / "cherry_picks",
                lambda device: media_inputs(cherry_picks, cherry_readers, device),
            )
        )
    trainer = MultimodalTrainer(
        model=model,
        args=training_arguments(settings, folder),
        train_dataset=MultimodalTorchDataset(train, readers),
        eval_dataset=MultimodalTorchDataset(val, val_readers) if val else None,
        data_collator=MultimodalCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=callbacks,
        part_learning_rates=rates,
    )
    run_training(trainer, resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the projectors, the LM and the tokenizer to %s", final)
