"""export_llava: a train_multimodal experiment folder -> a transformers LLaVA model folder."""

from __future__ import annotations

from pydantic import Field

from turbo.settings.base import StrictModel
from turbo.settings.outputs import OutputFolder
from turbo.settings.paths import InputFolder


class ExportLlavaSettings(StrictModel):
    """Export a trained multimodal model (CLIP encoder + llava projector + causal LM) as a
    `LlavaForConditionalGeneration` folder with its processor, which transformers and vLLM load as any
    LLaVA model. One image marker in a prompt stands for all of an image's embeddings there."""

    experiment_path: InputFolder = Field(
        description="The log_path of a train_multimodal run: its experiment_settings.json and final/ "
        "(the LM or its adapter, projectors.safetensors, trained encoders, tokenizer) are read."
    )
    save_path: OutputFolder = Field(
        description="A new or empty folder for the LLaVA model (written beside it, then renamed)."
    )
    overwrite: bool = Field(
        False, description="Replace save_path if it holds an earlier export_llava output."
    )
