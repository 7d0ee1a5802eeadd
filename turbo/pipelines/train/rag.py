"""train_rag: RAG-Sequence end to end; the question encoder and the generator (LoRA or full) train
together on chat data, the passages and their stored embeddings stay fixed.

The final folder holds generator/ (adapter or model), question_encoder/, generator_tokenizer/ and
question_encoder_tokenizer/; inference_rag reads it.
"""

from __future__ import annotations

import logging
from typing import Any

from turbo.data.chat import build_chat_samples
from turbo.data.rag import GeneratorInputs, RagCollator, question_of
from turbo.modeling.loading import load_model
from turbo.modeling.rag.encoder import load_encoder, vector_size
from turbo.modeling.rag.retriever import load_retriever, query_encoding, read_encoding
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    chat_previews,
    run_training,
    save_final,
    start_experiment,
    training_arguments,
    write_data_reports,
)
from turbo.pipelines.train.evaluation import attach_loggers, attach_rag_cherry_picks
from turbo.settings.pipelines.train.rag import RagExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: RagExperimentSettings) -> None:
    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.rag import RagTokenizers, RagTrainer

    rag = settings.model_settings
    retrieval = rag.retrieval_settings
    width = vector_size(rag, "model_settings")
    retriever = load_retriever(
        rag.index_settings.index_path, rag.index_settings.passages_path, "model_settings.index_settings",
        width, retrieval.n_docs,
    )  # fmt: skip
    encoding = query_encoding(
        retrieval.pooling, retrieval.normalize, read_encoding(rag.index_settings.passages_path)
    )
    folder, resume = start_experiment(settings)

    tokenizer = load_tokenizer(
        settings.tokenizer_settings, rag.generator_settings, settings.special_tokens_settings
    )
    train, reports = build_chat_samples(settings.train_dataset_settings, tokenizer, seed=settings.seed)
    all_reports = {"train": reports}
    val: list[Any] = []
    if settings.val_dataset_settings is not None:
        val, all_reports["val"] = build_chat_samples(
            settings.val_dataset_settings, tokenizer, seed=settings.seed
        )
    cherry_picks: list[Any] = []
    if settings.cherry_pick_settings is not None:
        cherry_picks, all_reports["cherry_pick"] = build_chat_samples(
            settings.cherry_pick_settings.dataset_settings, tokenizer, seed=settings.seed, inference=True
        )
    write_data_reports(folder, all_reports, chat_previews(train, tokenizer))
    for sample in [*train, *val, *cherry_picks]:
        question_of(sample.messages, sample.record.where)  # every sample has a question, before training

    from turbo.modeling.rag.model import RagSequenceModel

    generator = load_model(rag.generator_settings, tokenizer, settings.tokenizer_settings)
    question_encoder, question_tokenizer = load_encoder(
        rag.question_encoder_settings, "model_settings.question_encoder_settings"
    )
    question_encoder.train()
    model = RagSequenceModel(
        generator,
        question_encoder,
        retriever,
        GeneratorInputs(settings.train_dataset_settings, tokenizer, retrieval),
        n_docs=retrieval.n_docs,
        pooling=encoding[0],
        normalize=encoding[1],
    )
    logger.info(
        "RAG-Sequence: %d passages, n_docs %d, questions pooled by %s%s",
        retriever.size, retrieval.n_docs, encoding[0], " and normalised" if encoding[1] else "",
    )  # fmt: skip
    tokenizers = RagTokenizers(tokenizer, question_tokenizer)
    callbacks: list[Any] = [MetricsLogCallback(folder / "metrics.jsonl")]
    trainer = RagTrainer(
        model=model,
        args=training_arguments(settings, folder),
        train_dataset=train,
        eval_dataset=val or None,
        data_collator=RagCollator(question_tokenizer, retrieval),
        processing_class=question_tokenizer,
        callbacks=callbacks,
        tokenizers=tokenizers,
        encoder_learning_rate=retrieval.encoder_learning_rate,
    )
    attach_rag_cherry_picks(trainer, settings, cherry_picks, tokenizers, encoding, folder)
    attach_loggers(trainer, settings)
    run_training(trainer, resume)
    final = save_final(trainer, tokenizers, folder)
    logger.info("saved the generator, the question encoder and both tokenizers to %s", final)
