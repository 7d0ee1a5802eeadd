from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from turbo.settings.aliases import move_generation_eos_token
from turbo.settings.base import Count, PositiveCount, Seed, StrictModel

LOGPROBS_HELP = (
    "Write with each answer of an inference command its generated `token_ids`, their log-probabilities "
    "under the model's raw logits (`logprobs`, before temperature, top-k/p or penalties) and their sum "
    "(`cumulative_logprob`); above 0, also the `logprobs` likeliest tokens at each step, likeliest first "
    "(`top_logprobs`). None: none of these."
)


class GeneratorTransformersSettings(StrictModel):
    """Arguments of `transformers` `generate`."""

    num_beams: PositiveCount = Field(1, description="Beam search width; 1: no beam search.")
    max_new_tokens: PositiveCount = Field(64, description="Tokens generated at most per answer.")
    do_sample: bool = Field(False, description="Sample tokens (true) or take the most likely (false).")
    temperature: float | None = Field(None, gt=0, description="Sampling temperature. None: the model's.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass. None: the model's.")
    top_k: Count | None = Field(None, description="Sample among the k likeliest tokens. None: the model's.")
    repetition_penalty: float = Field(1.0, gt=0, description="Penalty on tokens already generated; 1: none.")
    num_return_sequences: PositiveCount = Field(1, description="Answers per prompt.")
    stop_strings: str | list[str] | None = Field(None, description="Generation stops after any of these.")
    logprobs: Count | None = Field(None, le=20, description=LOGPROBS_HELP)

    @model_validator(mode="after")
    def _enough_beams(self) -> GeneratorTransformersSettings:
        if not self.do_sample and self.num_return_sequences > self.num_beams:
            raise ValueError(
                f"num_return_sequences={self.num_return_sequences} needs do_sample: true "
                f"or num_beams >= {self.num_return_sequences}"
            )
        return self


class CustomGenerationSettings(StrictModel):
    """How generated tokens become the answer text."""

    skip_special_tokens: bool = Field(True, description="Drop special tokens from the decoded answer text.")
    remove_prompt: bool = Field(True, description="Answers hold only the generated text.")
    batch: PositiveCount | None = Field(
        None, description="Prompts per generate call (overrides the entry's batch)."
    )


class VLLMSamplingSettings(StrictModel):
    """Arguments of vLLM's `SamplingParams` (read only by model entries with `use_vllm: true`)."""

    n: PositiveCount = Field(1, description="Answers per prompt.")
    max_tokens: PositiveCount = Field(64, description="New tokens per answer at most.")
    temperature: float = Field(0.0, ge=0, description="0 is greedy decoding; above 0 samples.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling: keep the smallest set of this mass.")
    top_k: PositiveCount | None = Field(
        None, description="Sample among the k likeliest tokens; None (or vLLM's -1): all."
    )
    repetition_penalty: float = Field(1.0, gt=0, description="Above 1 discourages repeated tokens.")
    stop: str | list[str] | None = Field(
        None, description="Generation stops at any of these; the answer ends before it."
    )
    logprobs: Count | None = Field(None, le=20, description=LOGPROBS_HELP)
    seed: Seed | None = Field(None, description="Sampling seed per request; None: the engine's seed.")

    @field_validator("top_k", mode="before")
    @classmethod
    def _minus_one_is_off(cls, value: Any) -> Any:
        """vLLM writes "no top-k" as -1."""
        return None if value == -1 else value

    @model_validator(mode="after")
    def _samples_differ(self) -> VLLMSamplingSettings:
        if self.n > 1 and self.temperature == 0:
            raise ValueError(
                f"n={self.n} with temperature 0 gives {self.n} equal answers; set temperature > 0"
            )
        return self


class GenerationSettings(StrictModel):
    """`custom_settings.generation_eos_token` (the original's name) is read as
    transformers_settings.stop_strings."""

    @model_validator(mode="before")
    @classmethod
    def _old_eos_token(cls, data: Any) -> Any:
        return move_generation_eos_token(data, "custom_settings", "transformers_settings")

    transformers_settings: GeneratorTransformersSettings = GeneratorTransformersSettings()
    custom_settings: CustomGenerationSettings = CustomGenerationSettings()
    vllm_settings: VLLMSamplingSettings | None = Field(
        None,
        description="vLLM sampling for entries with use_vllm: true. None: transformers_settings are "
        "mapped onto vLLM (max_new_tokens -> max_tokens, num_return_sequences -> n, do_sample: false -> "
        "temperature 0, stop_strings -> stop).",
    )

    @model_validator(mode="after")
    def _one_sampling_block(self) -> GenerationSettings:
        if self.vllm_settings is not None and "transformers_settings" in self.model_fields_set:
            raise ValueError(
                "set either transformers_settings (also mapped onto vLLM) or vllm_settings, not both"
            )
        return self
