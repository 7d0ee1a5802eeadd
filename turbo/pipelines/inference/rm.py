"""Score every record of every source with every reward model; one JSONL per model and source."""

from __future__ import annotations

import logging
from pathlib import Path

from turbo.io import write_jsonl
from turbo.pipelines.inference.rm_rows import ROW_BUILDERS
from turbo.settings.pipelines.inference.rm import RmInferenceExperimentSettings

logger = logging.getLogger("turbo")


def output_path(save_path: Path, model_index: int, source: str) -> Path:
    return Path(save_path) / f"model_{model_index}" / f"{source}.jsonl"


def run(settings: RmInferenceExperimentSettings) -> None:
    from turbo.generators.classification import sequence_logits
    from turbo.modeling.loading import load_model
    from turbo.modeling.tokenizer import load_tokenizer

    dataset = settings.dataset_settings
    for model_index, entry in enumerate(settings.inference_settings):
        tokenizer = load_tokenizer(entry.tokenizer_settings, entry.model_settings)
        rows, sequences = ROW_BUILDERS[dataset.dataset_type](dataset, tokenizer, settings.seed)
        model = load_model(entry.model_settings, tokenizer, entry.tokenizer_settings)
        scores = [
            logits[0] for logits in sequence_logits(model, tokenizer, sequences, entry.batch, progress=True)
        ]
        cursor = 0
        for row, _, count, store in rows:
            store(row, scores[cursor : cursor + count])
            cursor += count
        for source in dataset.sources:
            path = output_path(settings.save_path, model_index, source.name)
            count = write_jsonl(path, (row for row, name, _, _ in rows if name == source.name))
            logger.info("wrote %d scored records to %s", count, path)
        del model
