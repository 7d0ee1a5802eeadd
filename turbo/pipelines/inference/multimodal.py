"""Answer every multimodal record with each model entry (LM, adapter, projectors) and generation setting."""

from __future__ import annotations

import logging
from typing import Any

from turbo.data.multimodal import MultimodalSample, add_modality_tokens, build_multimodal_samples
from turbo.generators.transformers import answer_rows, generate_answers_with_extras
from turbo.io import write_json, write_jsonl
from turbo.modeling.loading import load_model
from turbo.modeling.multimodal.parts import (
    build_encoders,
    build_projectors,
    build_readers,
    check_shapes,
    load_projector_weights,
)
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.inference.chat import output_path
from turbo.pipelines.tools.evaluate import score_rows
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
    from turbo.modeling.multimodal.model import MultimodalModel

    dataset = settings.dataset_settings
    language_model = load_model(entry.model_settings, tokenizer, entry.tokenizer_settings)
    embeddings = language_model.get_input_embeddings().weight
    encoders = build_encoders(settings.encoders, embeddings.dtype)
    projectors = build_projectors(
        settings.projectors,
        shapes,
        embeddings.shape[1],
        entry.n_modality_embeddings,
        settings.seed,
        embeddings.dtype,
    )
    load_projector_weights(projectors, entry.projections_path)
    token_ids = {m: tokenizer.convert_tokens_to_ids(t) for m, t in dataset.modality_token_mapping.items()}
    return MultimodalModel(language_model, encoders, projectors, token_ids).eval()


def media_inputs(samples: list[MultimodalSample], readers: dict[str, Any], device: Any) -> Any:
    """extra_inputs for generate_answers: the media of samples[start:end], stacked per modality."""
    from turbo.data.multimodal_batches import read_media, stack_media

    def inputs(start: int, end: int) -> dict[str, Any]:
        stacked = stack_media([read_media(sample.media, readers) for sample in samples[start:end]])
        return {"modality_inputs": {modality: tensor.to(device) for modality, tensor in stacked.items()}}

    return inputs


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
