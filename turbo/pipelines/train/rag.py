"""train_rag: RAG-Sequence end to end; the question encoder and the generator (LoRA or full) train
together on chat data, the passages and their stored embeddings stay fixed.

The final folder holds generator/ (adapter or model), question_encoder/, generator_tokenizer/ and
question_encoder_tokenizer/; inference_rag reads it.
"""

from __future__ import annotations

import logging

from turbo.data.chat import build_chat_samples
from turbo.data.rag import GeneratorInputs, RagCollator, question_of
from turbo.modeling.loading import load_model
from turbo.modeling.rag.encoder import load_encoder, vector_size
from turbo.modeling.rag.retriever import load_retriever, query_encoding, read_encoding
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import end_run, metrics_log, start_experiment, training_arguments
from turbo.pipelines.train.evaluation import attach_rag_cherry_picks
from turbo.pipelines.train.splits import chat_previews, load_splits
from turbo.settings.pipelines.train.rag import RagExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: RagExperimentSettings) -> None:
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
    train, val, cherry_picks = load_splits(
        settings,
        folder,
        tokenizer,
        lambda dataset: build_chat_samples(dataset, tokenizer, seed=settings.seed),
        previews=lambda samples: chat_previews(samples, tokenizer),
        hold_out=False,
    )
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
    trainer = RagTrainer(
        model=model,
        args=training_arguments(settings, folder),
        train_dataset=train,
        eval_dataset=val or None,
        data_collator=RagCollator(question_tokenizer, retrieval),
        processing_class=question_tokenizer,
        callbacks=[metrics_log(folder)],
        tokenizers=tokenizers,
        encoder_learning_rate=retrieval.encoder_learning_rate,
    )
    attach_rag_cherry_picks(trainer, settings, cherry_picks, tokenizers, encoding, folder)
    end_run(trainer, settings, tokenizers, folder, resume, "generator, question encoder and both tokenizers")
