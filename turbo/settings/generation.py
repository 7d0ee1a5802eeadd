from __future__ import annotations

from pydantic import Field, model_validator

from turbo.settings.base import StrictModel


class GeneratorTransformersSettings(StrictModel):
    """Arguments of `transformers` `generate`."""

    num_beams: int = Field(1, ge=1)
    max_new_tokens: int = Field(64, gt=0)
    do_sample: bool = False
    temperature: float | None = Field(None, gt=0)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float = Field(1.0, gt=0)
    num_return_sequences: int = Field(1, ge=1)
    stop_strings: str | list[str] | None = Field(None, description="Generation stops after any of these.")

    @model_validator(mode="after")
    def _enough_beams(self) -> GeneratorTransformersSettings:
        if not self.do_sample and self.num_return_sequences > self.num_beams:
            raise ValueError(
                f"num_return_sequences={self.num_return_sequences} needs do_sample: true "
                f"or num_beams >= {self.num_return_sequences}"
            )
        return self


class CustomGenerationSettings(StrictModel):
    skip_special_tokens: bool = True
    remove_prompt: bool = Field(True, description="Answers hold only the generated text.")
    batch: int | None = Field(
        None, gt=0, description="Prompts per generate call (overrides the entry's batch)."
    )


class GenerationSettings(StrictModel):
    transformers_settings: GeneratorTransformersSettings = GeneratorTransformersSettings()
    custom_settings: CustomGenerationSettings = CustomGenerationSettings()
