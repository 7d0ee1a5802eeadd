"""Answer every record of every source with every model entry and generation setting.

Each model entry generates with transformers, or with vLLM when it sets `use_vllm: true`; both write
the same files with the same rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from turbo.data.chat import ChatSample, build_chat_samples
from turbo.generators.transformers import answer_rows, generate_answers_with_extras
from turbo.io import write_jsonl
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.inference.common import output_path
from turbo.settings.pipelines.inference.chat import (
    ChatInferenceExperimentSettings,
    ChatInferenceModelSettings,
)

logger = logging.getLogger("turbo")

Rows = list[dict[str, Any]]


def transformers_rows(
    entry: ChatInferenceModelSettings, tokenizer: Any, samples: list[ChatSample], seed: int
) -> Iterator[Rows]:
    """The output rows of each generation setting, generated with transformers."""
    model = load_model(entry.model_settings, tokenizer, entry.tokenizer_settings)
    for generation in entry.generation_settings:
        answers, extras = generate_answers_with_extras(
            model,
            tokenizer,
            [sample.input_ids for sample in samples],
            generation.transformers_settings,
            generation.custom_settings,
            batch=entry.generate_batch,
            progress=True,
        )
        yield answer_rows(samples, answers, extras)
    del model


def vllm_rows(
    entry: ChatInferenceModelSettings, tokenizer: Any, samples: list[ChatSample], seed: int
) -> Iterator[Rows]:
    """The output rows of each generation setting, generated with one vLLM engine (adapter as LoRA)."""
    from turbo.generators.vllm import generate_answers_vllm, lora_request, vllm_engine
    from turbo.settings.vllm import vllm_sampling

    with vllm_engine(entry, tokenizer, seed) as llm:
        lora = lora_request(entry)
        for generation in entry.generation_settings:
            answers, extras = generate_answers_vllm(
                llm,
                tokenizer,
                [sample.input_ids for sample in samples],
                vllm_sampling(generation),
                generation.custom_settings,
                lora=lora,
                progress=True,
            )
            yield answer_rows(samples, answers, extras)


def run(settings: ChatInferenceExperimentSettings) -> None:
    from transformers import set_seed

    for model_index, entry in enumerate(settings.inference_settings):
        set_seed(settings.seed)
        tokenizer = load_tokenizer(entry.tokenizer_settings, entry.model_settings)
        samples, report = build_chat_samples(
            settings.dataset_settings, tokenizer, seed=settings.seed, inference=True
        )
        logger.info("data: %s", report.summary())
        generations = vllm_rows if entry.use_vllm else transformers_rows
        answered = generations(entry, tokenizer, samples, settings.seed)
        if settings.tool_settings:  # the tool loop of online RL (pipelines/inference/chat_tools.py)
            from turbo.pipelines.inference.chat_tools import tool_rows

            answered = tool_rows(settings, entry, tokenizer, samples)
        for generation_index, rows in enumerate(answered):
            for source in settings.dataset_settings.sources:
                path = output_path(settings.save_path, model_index, generation_index, source.name)
                count = write_jsonl(path, (row for row in rows if row["dataset_name"] == source.name))
                logger.info("wrote %d answered records to %s", count, path)
