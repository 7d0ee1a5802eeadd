"""Predict the label and class probabilities of every record with every model entry."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from turbo.data.classification import ClassificationSample, build_classification_samples
from turbo.generators.classification import sequence_logits
from turbo.io import write_jsonl
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.settings.pipelines.inference.classification import ClassificationInferenceExperimentSettings

logger = logging.getLogger("turbo")


def output_path(save_path: Path, model_index: int, source: str) -> Path:
    return save_path / f"model_{model_index}" / f"{source}.jsonl"


def prediction_rows(
    samples: list[ClassificationSample], probabilities: list[list[float]]
) -> list[dict[str, Any]]:
    rows = []
    for sample, probs in zip(samples, probabilities, strict=True):
        row = sample.record.record.model_dump(mode="json", exclude_none=True)
        row["dataset_name"] = sample.source
        row["predicted_label"] = max(range(len(probs)), key=probs.__getitem__)
        row["probabilities"] = probs
        rows.append(row)
    return rows


def run(settings: ClassificationInferenceExperimentSettings) -> None:
    import torch
    from transformers import set_seed

    for model_index, entry in enumerate(settings.inference_settings):
        set_seed(settings.seed)
        tokenizer = load_tokenizer(entry.tokenizer_settings, entry.model_settings)
        samples, report = build_classification_samples(
            settings.dataset_settings, tokenizer, seed=settings.seed, require_labels=False
        )
        logger.info("data: %s", report.summary())
        model = load_model(entry.model_settings, tokenizer, entry.tokenizer_settings)
        logits = sequence_logits(model, tokenizer, [s.input_ids for s in samples], entry.batch, progress=True)
        probabilities = torch.softmax(torch.tensor(logits), dim=-1).tolist()
        rows = prediction_rows(samples, probabilities)
        for source in settings.dataset_settings.sources:
            path = output_path(settings.save_path, model_index, source.name)
            count = write_jsonl(path, (row for row in rows if row["dataset_name"] == source.name))
            logger.info("wrote %d predictions to %s", count, path)
        del model
