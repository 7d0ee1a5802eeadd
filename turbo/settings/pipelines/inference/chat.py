from __future__ import annotations

from pathlib import Path

from pydantic import Field

from turbo.settings.base import StrictModel
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.generation import GenerationSettings
from turbo.settings.model import ModelSettings
from turbo.settings.tokenizer import TokenizerSettings


class ChatInferenceModelSettings(StrictModel):
    """One model to answer with; each of its generation settings gives its own answers."""

    model_settings: ModelSettings
    tokenizer_settings: TokenizerSettings = TokenizerSettings()
    generation_settings: list[GenerationSettings] = Field(default_factory=lambda: [GenerationSettings()])
    use_vllm: bool = False
    batch: int = Field(1, gt=0, description="Prompts per generate call.")


class ChatInferenceExperimentSettings(StrictModel):
    inference_settings: list[ChatInferenceModelSettings] = Field(min_length=1)
    dataset_settings: ChatDatasetSettings
    save_path: Path = Field(description="Folder for one JSONL of answers per model, generation and source.")
    seed: int = 42
