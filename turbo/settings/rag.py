"""RAG parts: the question encoder, the index (a faiss file + a `datasets` passages folder), retrieval."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from turbo.settings.base import StrictModel
from turbo.settings.model import ModelSettings, ModelTransformersSettings
from turbo.settings.paths import InputPath

Pooling = Literal["mean", "cls"]


class EncoderModelSettings(StrictModel):
    """A text encoder (BERT-style `AutoModel`) that turns questions or passages into vectors."""

    model_path: InputPath = Field(description="Local folder of a transformers encoder.")
    model_type: Literal["encoder"] = "encoder"
    transformers_settings: ModelTransformersSettings = ModelTransformersSettings()
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra from_pretrained kwargs.")
    tokenizer_path: InputPath | None = Field(
        None, description="Its tokenizer (train_rag writes question_encoder_tokenizer/). None: model_path."
    )
    embeddings_initialization_strategy: dict[str, str] | None = Field(
        None,
        description="Accepted empty, as the original's files write it: an encoder's vocabulary is not grown.",
    )

    @field_validator("embeddings_initialization_strategy")
    @classmethod
    def _no_new_tokens(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value:
            raise ValueError("a question or passage encoder gets no new tokens; leave it empty or remove it")
        return value


class IndexSettings(StrictModel):
    """The two files transformers' RagRetriever reads for a custom index."""

    index_path: Path = Field(description="The faiss index file.")
    passages_path: Path = Field(
        description="Folder written by datasets' save_to_disk, columns title, text, embeddings (+ id)."
    )


class RagIndexSettings(IndexSettings):
    """An index that exists (a RAG experiment reads it)."""

    index_path: InputPath = Field(description="The faiss index file.")
    passages_path: InputPath = Field(
        description="Folder written by datasets' save_to_disk, columns title, text, embeddings (+ id)."
    )


class RetrievalSettings(StrictModel):
    """How many passages the retriever returns and the width of its vectors."""

    n_docs: int = Field(1, gt=0, description="Passages retrieved per question.")
    title_sep: str = Field(" / ", description="Between a passage's title and its text.")
    doc_sep: str = Field(" // ", description="Between passages, and between the last one and the question.")
    prefix: str = Field("", description='Put before every question for the encoder, e.g. "query: " (e5).')
    max_doc_length: int = Field(
        300, gt=0, description="Generator tokens kept of each passage (title + text)."
    )
    retrieval_vector_size: int | None = Field(
        None,
        gt=0,
        description="Width of the question vectors. None: the question encoder's width (hidden_size in its "
        "config.json). Where set, it must equal the encoder's width and the index's dimension.",
    )
    retrieval_batch_size: int = Field(8, gt=0, description="Questions per encoder forward at inference.")
    query_encoder_max_length: int = Field(512, gt=0, description="Question tokens kept for the encoder.")
    encoder_learning_rate: float | None = Field(
        None, ge=0, description="train_rag: the question encoder's learning rate. None: the trainer's."
    )
    pooling: Pooling | None = Field(
        None, description="How questions are pooled. None: as build_index pooled the passages (else mean)."
    )
    normalize: bool | None = Field(
        None, description="L2-normalise question vectors. None: as build_index did (else false)."
    )


class RagModelSettings(StrictModel):
    """A RAG model: generator, question encoder, index and how retrieval runs.

    The generator-level properties (model_path, peft_settings, ...) let code that reads any model
    block (the train base checks, `turbo validate`) see the generator.
    """

    generator_settings: ModelSettings
    question_encoder_settings: EncoderModelSettings
    index_settings: RagIndexSettings
    retrieval_settings: RetrievalSettings = RetrievalSettings()

    @model_validator(mode="after")
    def _causal_generator(self) -> RagModelSettings:
        if self.generator_settings.model_type != "causal":
            raise ValueError(
                "generator_settings.model_type must be 'causal' (the generator writes the answer)"
            )
        return self

    @property
    def model_path(self) -> Path:
        return self.generator_settings.model_path

    @property
    def model_type(self) -> str:
        return self.generator_settings.model_type

    @property
    def peft_settings(self) -> Any:
        return self.generator_settings.peft_settings

    @property
    def adapter_path(self) -> Path | None:
        return self.generator_settings.adapter_path

    @property
    def bnb_settings(self) -> Any:
        return self.generator_settings.bnb_settings

    @property
    def trains_adapter(self) -> bool:
        return self.generator_settings.trains_adapter

    @property
    def transformers_settings(self) -> ModelTransformersSettings:
        return self.generator_settings.transformers_settings

    @property
    def embeddings_initialization_strategy(self) -> dict[str, str] | None:
        return self.generator_settings.embeddings_initialization_strategy
