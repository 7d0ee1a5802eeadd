"""Answer every record of every source with every model entry and generation setting."""

from __future__ import annotations

import logging
from pathlib import Path

from turbo.data.chat import build_chat_samples
from turbo.generators.transformers import answer_rows, generate_answers
from turbo.io import write_jsonl
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.settings.pipelines.inference.chat import ChatInferenceExperimentSettings

logger = logging.getLogger("turbo")


def output_path(save_path: Path, model_index: int, generation_index: int, source: str) -> Path:
    return save_path / f"model_{model_index}" / f"generation_{generation_index}" / f"{source}.jsonl"


def run(settings: ChatInferenceExperimentSettings) -> None:
    from transformers import set_seed

    for model_index, entry in enumerate(settings.inference_settings):
        set_seed(settings.seed)
        tokenizer = load_tokenizer(entry.tokenizer_settings, entry.model_settings)
        samples, report = build_chat_samples(
            settings.dataset_settings, tokenizer, seed=settings.seed, inference=True
        )
        logger.info("data: %s", report.summary())
        model = load_model(entry.model_settings, tokenizer, entry.tokenizer_settings)
        for generation_index, generation in enumerate(entry.generation_settings):
            answers = generate_answers(
                model,
                tokenizer,
                [sample.input_ids for sample in samples],
                generation.transformers_settings,
                generation.custom_settings,
                batch=entry.batch,
                progress=True,
            )
            rows = answer_rows(samples, answers)
            for source in settings.dataset_settings.sources:
                path = output_path(settings.save_path, model_index, generation_index, source.name)
                count = write_jsonl(path, (row for row in rows if row["dataset_name"] == source.name))
                logger.info("wrote %d answered records to %s", count, path)
        del model
