from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from turbo.settings.base import StrictModel
from turbo.settings.model import ModelSettings
from turbo.settings.outputs import FileSize, OutputFolder
from turbo.settings.paths import InputFolder
from turbo.settings.problems import raise_problems
from turbo.settings.tokenizer import TokenizerSettings


class MergeAdaptersSettings(StrictModel):
    model_settings: ModelSettings
    tokenizer_settings: TokenizerSettings = TokenizerSettings()
    adapter_path: InputFolder | None = Field(None, description="Or model_settings.adapter_path.")
    save_path: OutputFolder = Field(
        description="A new or empty folder for the merged model (written beside it, then renamed)."
    )
    overwrite: bool = Field(
        False, description="Replace save_path if it holds an earlier merge_adapters_to_base output."
    )
    max_shard_size: FileSize = Field(
        "5GB", description='Largest safetensors shard of the merged model: "5GB", "500MB", "10KiB" or bytes.'
    )

    @model_validator(mode="after")
    def _one_adapter(self) -> MergeAdaptersSettings:
        if (self.adapter_path is None) == (self.model_settings.adapter_path is None):
            problems = [
                ("adapter_path", "set the adapter to merge once: here or in model_settings.adapter_path")
            ]
            raise_problems(self, problems)
        return self

    @property
    def adapter(self) -> Path:
        return self.adapter_path or self.model_settings.adapter_path  # type: ignore[return-value]
