from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from turbo.settings.base import Seed, StrictModel
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.generation import GenerationSettings
from turbo.settings.pipelines.inference.chat import ChatInferenceModelSettings
from turbo.settings.rag import RagModelSettings
from turbo.settings.tokenizer import TokenizerSettings
from turbo.settings.vllm import VLLMEngineSettings


class RagInferenceModelSettings(StrictModel):
    """One RAG model to answer with: the generator is checked and run like an inference_chat entry."""

    model_settings: RagModelSettings
    tokenizer_settings: TokenizerSettings = Field(
        TokenizerSettings(), description="The generator's tokenizer (train_rag writes generator_tokenizer/)."
    )
    generation_settings: list[GenerationSettings] = Field(default_factory=lambda: [GenerationSettings()])
    use_vllm: bool = Field(False, description="Generate with vLLM instead of transformers.")
    vllm_engine_settings: VLLMEngineSettings | None = None
    batch: int = Field(1, gt=0, description="Prompts per generate call.")

    @model_validator(mode="after")
    def _generator_fits(self) -> RagInferenceModelSettings:
        try:
            self.generator_entry  # noqa: B018  (validates the generator as a chat entry)
        except ValidationError as exc:
            raise ValueError("; ".join(err["msg"] for err in exc.errors())) from None
        return self

    @property
    def generator_entry(self) -> ChatInferenceModelSettings:
        """The generator as an inference_chat entry (what the transformers and vLLM generators take)."""
        return ChatInferenceModelSettings(
            model_settings=self.model_settings.generator_settings,
            tokenizer_settings=self.tokenizer_settings,
            generation_settings=self.generation_settings,
            use_vllm=self.use_vllm,
            vllm_engine_settings=self.vllm_engine_settings,
            batch=self.batch,
        )


class RagInferenceExperimentSettings(StrictModel):
    inference_settings: list[RagInferenceModelSettings] = Field(min_length=1)
    dataset_settings: ChatDatasetSettings = Field(
        description="Chat records; the last user message of each is the question."
    )
    save_path: Path = Field(description="Folder for one JSONL of answers per model, generation and source.")
    seed: Seed = Field(42, description="Seeds Python, NumPy and torch (sampling, shuffling, initialisation).")
