"""bitsandbytes loading (settings -> BitsAndBytesConfig) and readying a quantised model for QLoRA."""

from __future__ import annotations

from typing import Any

from turbo.errors import ModelError
from turbo.settings.model import ModelSettings


def quantization_config(settings: ModelSettings) -> Any:
    """The `quantization_config` for `from_pretrained`, or None without bnb_settings."""
    bnb = settings.bnb_settings
    if bnb is None:
        return None
    import importlib.util

    import torch
    from transformers import BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(
            "model_settings.bnb_settings needs the bitsandbytes package (pip install bitsandbytes)"
        )
    model_dtype = settings.transformers_settings.dtype
    compute = bnb.bnb_4bit_compute_dtype or (model_dtype if model_dtype not in (None, "auto") else "float32")
    return BitsAndBytesConfig(
        load_in_4bit=bnb.load_in_4bit,
        load_in_8bit=bnb.load_in_8bit,
        bnb_4bit_quant_type=bnb.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=bnb.bnb_4bit_use_double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute),
        llm_int8_skip_modules=bnb.llm_int8_skip_modules,
    )


def prepare_for_adapter_training(model: Any, settings: ModelSettings) -> Any:
    """A quantised model about to train an adapter: norms in float32, inputs that carry gradients.

    Gradient checkpointing stays with trainer_settings.gradient_checkpointing.
    """
    if settings.bnb_settings is None or not settings.trains_adapter:
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
