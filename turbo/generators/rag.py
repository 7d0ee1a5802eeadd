"""Answering chat prompts with retrieval, batched: questions encoded in batches, one faiss search for
all of them, the retrieved passages joined into each prompt, answers generated for the whole batch.

`answer_with_retrieval` takes parts that are already loaded (generator, question encoder, retriever),
so inference_rag and train_rag's cherry-picks call the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from turbo.data.chat import ChatSample
from turbo.data.rag import question_of, samples_with_documents
from turbo.generators.transformers import answer_rows, generate_answers
from turbo.modeling.rag.encoder import encode_texts
from turbo.modeling.rag.retriever import Passage, Retriever
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.generation import CustomGenerationSettings, GeneratorTransformersSettings
from turbo.settings.rag import RetrievalSettings


@dataclass(frozen=True)
class QuestionEncoder:
    """A loaded question encoder with its tokenizer and how it pools (as the index was built)."""

    model: Any
    tokenizer: Any
    pooling: str
    normalize: bool


@dataclass(frozen=True)
class Retrieved:
    ids: np.ndarray  # (questions, n_docs) passage rows
    scores: np.ndarray  # (questions, n_docs) inner products question · passage
    documents: list[list[Passage]]


def retrieve(
    encoder: QuestionEncoder, retriever: Retriever, questions: list[str], retrieval: RetrievalSettings
) -> Retrieved:
    """The n_docs nearest passages of every question: encoder forwards of retrieval_batch_size
    questions, then a single faiss search."""
    vectors = encode_texts(
        encoder.model,
        encoder.tokenizer,
        [retrieval.prefix + question for question in questions],
        pooling=encoder.pooling,
        normalize=encoder.normalize,
        max_length=retrieval.query_encoder_max_length,
        batch_size=retrieval.retrieval_batch_size,
    )
    ids = retriever.search(vectors, retrieval.n_docs)
    scores = np.einsum("bd,bnd->bn", vectors, retriever.embeddings(ids))
    return Retrieved(ids, scores, retriever.documents(ids))


def retrieve_for_samples(
    encoder: QuestionEncoder, retriever: Retriever, samples: list[ChatSample], retrieval: RetrievalSettings
) -> Retrieved:
    return retrieve(encoder, retriever, [question_of(s.messages, s.record.where) for s in samples], retrieval)


def prompts_with_documents(
    samples: list[ChatSample],
    retrieved: Retrieved,
    dataset_settings: ChatDatasetSettings,
    tokenizer: Any,
    retrieval: RetrievalSettings,
) -> list[list[int]]:
    """The generator's prompt token ids: each sample with its passages joined before the question."""
    with_docs = samples_with_documents(
        samples, retrieved.documents, dataset_settings, tokenizer, retrieval, inference=True, joined=True
    )
    return [sample.input_ids for sample in with_docs]


def answer_with_retrieval(
    generator: Any,
    tokenizer: Any,
    encoder: QuestionEncoder,
    retriever: Retriever,
    samples: list[ChatSample],
    dataset_settings: ChatDatasetSettings,
    retrieval: RetrievalSettings,
    generation: GeneratorTransformersSettings,
    custom: CustomGenerationSettings,
    batch: int,
    progress: bool = False,
) -> tuple[list[list[str]], Retrieved]:
    """Answers (num_return_sequences per sample, in order) to chat prompts, each conditioned on its
    retrieved passages, and what was retrieved. `samples` are inference samples (build_chat_samples
    with inference=True) tokenised with the generator's tokenizer; `dataset_settings` are theirs."""
    retrieved = retrieve_for_samples(encoder, retriever, samples, retrieval)
    prompts = prompts_with_documents(samples, retrieved, dataset_settings, tokenizer, retrieval)
    answers = generate_answers(
        generator, tokenizer, prompts, generation, custom, batch=batch, progress=progress
    )
    return answers, retrieved


def rag_rows(
    samples: list[ChatSample],
    answers: list[list[str]],
    retrieved: Retrieved,
    extras: list[list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """inference_chat's rows plus the retrieved passages' ids, titles and scores, best first."""
    rows = answer_rows(samples, answers, extras)
    for row, docs, scores in zip(rows, retrieved.documents, retrieved.scores, strict=True):
        row["retrieved_ids"] = [doc.id for doc in docs]
        row["retrieved_titles"] = [doc.title for doc in docs]
        row["retrieved_scores"] = [round(float(score), 6) for score in scores]
    return rows
