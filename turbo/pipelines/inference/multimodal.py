"""Answer every multimodal record with each model entry (LM, adapter, projectors) and generation setting."""

from __future__ import annotations

import logging
from typing import Any

from turbo.data.multimodal import add_modality_tokens, build_multimodal_samples
from turbo.data.multimodal_batches import media_inputs
from turbo.generators.transformers import answer_rows, generate_answers_with_extras
from turbo.io import write_json, write_jsonl
from turbo.modeling.loading import load_model
from turbo.modeling.multimodal.parts import build_readers, check_shapes
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.inference.common import output_path, score_rows
from turbo.pipelines.multimodal_model import assemble_multimodal, modality_token_ids
from turbo.settings.pipelines.inference.multimodal import (
    MultimodalInferenceExperimentSettings,
    MultimodalInferenceModelSettings,
)

logger = logging.getLogger("turbo")


def load_multimodal_model(
    settings: MultimodalInferenceExperimentSettings,
    entry: MultimodalInferenceModelSettings,
    tokenizer: Any,
    shapes: dict[str, tuple[int, int]],
) -> Any:
    """The LM of `entry` with the encoders and its projectors (projections_path), in eval mode."""
    language_model = load_model(entry.model_settings, tokenizer, entry.tokenizer_settings)
    return assemble_multimodal(
        language_model,
        settings.encoders,
        settings.projectors,
        shapes,
        entry.n_modality_embeddings,
        modality_token_ids(tokenizer, settings.dataset_settings),
        settings.seed,
        {None: entry.projections_path},
    ).eval()


def run(settings: MultimodalInferenceExperimentSettings) -> None:
    from transformers import set_seed

    dataset = settings.dataset_settings
    shapes = check_shapes(
        settings.encoders, settings.projectors, dataset.n_modality_embeddings, "dataset_settings."
    )
    readers = build_readers(dataset.readers)
    for model_index, entry in enumerate(settings.inference_settings):
        set_seed(settings.seed)
        tokenizer = load_tokenizer(entry.tokenizer_settings, entry.model_settings)
        add_modality_tokens(tokenizer, dataset)
        samples, report = build_multimodal_samples(
            dataset, tokenizer, readers, seed=settings.seed, inference=True
        )
        logger.info("data: %s", report.summary())
        model = load_multimodal_model(settings, entry, tokenizer, shapes)
        device = next(model.parameters()).device
        for generation_index, generation in enumerate(entry.generation_settings):
            answers, extras = generate_answers_with_extras(
                model,
                tokenizer,
                [sample.input_ids for sample in samples],
                generation.transformers_settings,
                generation.custom_settings,
                batch=entry.generate_batch,
                progress=True,
                extra_inputs=media_inputs(samples, readers, device),
            )
            rows = answer_rows(samples, answers, extras)  # type: ignore[arg-type]
            means = {}
            for source in dataset.sources:
                path = output_path(settings.save_path, model_index, generation_index, source.name)
                source_rows = [row for row in rows if row["dataset_name"] == source.name]
                if entry.metric_settings:
                    means[source.name], source_rows = score_rows(
                        entry.metric_settings, source_rows, source.name
                    )
                count = write_jsonl(path, source_rows)
                logger.info("wrote %d answered records to %s", count, path)
            if means:
                write_json(path.parent / "metrics.json", means)
                logger.info("metrics: %s", means)
        del model
