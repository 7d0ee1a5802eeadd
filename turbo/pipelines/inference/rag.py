"""inference_rag: answer chat records with retrieval, in batches, with transformers or vLLM.

For each model entry: questions (the last user message) are encoded in batches and searched in one
faiss call; each prompt gets its n_docs passages joined before the question; the generator answers
all prompts. Rows are inference_chat's plus retrieved_ids, retrieved_titles and retrieved_scores.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from turbo.data.chat import ChatSample, build_chat_samples
from turbo.generators.rag import (
    QuestionEncoder,
    Retrieved,
    prompts_with_documents,
    rag_rows,
    retrieve_for_samples,
)
from turbo.generators.transformers import generate_answers_with_extras
from turbo.io import write_jsonl
from turbo.modeling.loading import load_model
from turbo.modeling.rag.encoder import load_encoder, vector_size
from turbo.modeling.rag.retriever import load_retriever, query_encoding, read_encoding
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.inference.common import output_path
from turbo.settings.pipelines.inference.rag import RagInferenceExperimentSettings, RagInferenceModelSettings

logger = logging.getLogger("turbo")

Rows = list[dict[str, Any]]


def transformers_rows(
    entry: RagInferenceModelSettings, tokenizer: Any, samples: list[ChatSample], prompts: list[list[int]],
    retrieved: Retrieved, seed: int,
) -> Iterator[Rows]:  # fmt: skip
    model = load_model(entry.model_settings.generator_settings, tokenizer, entry.tokenizer_settings)
    for generation in entry.generation_settings:
        answers, extras = generate_answers_with_extras(
            model, tokenizer, prompts, generation.transformers_settings, generation.custom_settings,
            batch=entry.batch, progress=True,
        )  # fmt: skip
        yield rag_rows(samples, answers, retrieved, extras)
    del model


def vllm_rows(
    entry: RagInferenceModelSettings, tokenizer: Any, samples: list[ChatSample], prompts: list[list[int]],
    retrieved: Retrieved, seed: int,
) -> Iterator[Rows]:  # fmt: skip
    from turbo.generators.vllm import generate_answers_vllm, lora_request, vllm_engine
    from turbo.settings.vllm import vllm_sampling

    chat_entry = entry.generator_entry
    with vllm_engine(chat_entry, tokenizer, seed) as llm:
        lora = lora_request(chat_entry)
        for generation in entry.generation_settings:
            answers, extras = generate_answers_vllm(
                llm, tokenizer, prompts, vllm_sampling(generation), generation.custom_settings,
                lora=lora, progress=True,
            )  # fmt: skip
            yield rag_rows(samples, answers, retrieved, extras)


def retrieve_all(entry: RagInferenceModelSettings, where: str, samples: list[ChatSample]) -> Retrieved:
    """Load the retriever and the question encoder, retrieve for every sample, free the encoder."""
    rag = entry.model_settings
    retrieval = rag.retrieval_settings
    width = vector_size(rag, f"{where}.model_settings")
    retriever = load_retriever(
        rag.index_settings.index_path, rag.index_settings.passages_path,
        f"{where}.model_settings.index_settings", width, retrieval.n_docs,
    )  # fmt: skip
    pooling, normalize = query_encoding(
        retrieval.pooling, retrieval.normalize, read_encoding(rag.index_settings.passages_path)
    )
    model, question_tokenizer = load_encoder(
        rag.question_encoder_settings, f"{where}.model_settings.question_encoder_settings"
    )
    retrieved = retrieve_for_samples(
        QuestionEncoder(model, question_tokenizer, pooling, normalize), retriever, samples, retrieval
    )
    logger.info("retrieved %d passages for each of %d questions", retrieval.n_docs, len(samples))
    return retrieved


def run(settings: RagInferenceExperimentSettings) -> None:
    from transformers import set_seed

    for model_index, entry in enumerate(settings.inference_settings):
        set_seed(settings.seed)
        where = f"inference_settings.{model_index}"
        tokenizer = load_tokenizer(entry.tokenizer_settings, entry.model_settings.generator_settings)
        samples, report = build_chat_samples(
            settings.dataset_settings, tokenizer, seed=settings.seed, inference=True
        )
        logger.info("data: %s", report.summary())
        retrieved = retrieve_all(entry, where, samples)
        prompts = prompts_with_documents(
            samples, retrieved, settings.dataset_settings, tokenizer, entry.model_settings.retrieval_settings
        )
        generations = vllm_rows if entry.use_vllm else transformers_rows
        for generation_index, rows in enumerate(
            generations(entry, tokenizer, samples, prompts, retrieved, settings.seed)
        ):
            for source in settings.dataset_settings.sources:
                path = output_path(settings.save_path, model_index, generation_index, source.name)
                count = write_jsonl(path, (row for row in rows if row["dataset_name"] == source.name))
                logger.info("wrote %d answered records to %s", count, path)
