"""Settings -> peft configs, plus loading a saved adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turbo.errors import ModelError
from turbo.settings.model import (
    LoraSettings,
    ModelSettings,
    PrefixTuningSettings,
    PromptTuningSettings,
    PTuningSettings,
)

TASK_TYPES = {"causal": "CAUSAL_LM", "seq_cls": "SEQ_CLS"}


def _lora(settings: LoraSettings, task_type: str, _: Any) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        bias=settings.bias,
        target_modules=settings.target_modules,
        modules_to_save=settings.modules_to_save,
        use_rslora=settings.use_rslora,
        use_dora=settings.use_dora,
        task_type=task_type,
    )


def _prompt_tuning(settings: PromptTuningSettings, task_type: str, tokenizer_path: Path) -> Any:
    from peft import PromptTuningConfig, PromptTuningInit

    text = settings.prompt_tuning_init_text
    return PromptTuningConfig(
        num_virtual_tokens=settings.num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.TEXT if text else PromptTuningInit.RANDOM,
        prompt_tuning_init_text=text,
        tokenizer_name_or_path=str(tokenizer_path) if text else None,
        task_type=task_type,
    )


def _prefix_tuning(settings: PrefixTuningSettings, task_type: str, _: Any) -> Any:
    from peft import PrefixTuningConfig

    kwargs = {"encoder_hidden_size": settings.encoder_hidden_size} if settings.encoder_hidden_size else {}
    return PrefixTuningConfig(
        num_virtual_tokens=settings.num_virtual_tokens,
        prefix_projection=settings.prefix_projection,
        task_type=task_type,
        **kwargs,
    )


def _p_tuning(settings: PTuningSettings, task_type: str, _: Any) -> Any:
    from peft import PromptEncoderConfig

    kwargs = {"encoder_hidden_size": settings.encoder_hidden_size} if settings.encoder_hidden_size else {}
    return PromptEncoderConfig(
        num_virtual_tokens=settings.num_virtual_tokens,
        encoder_reparameterization_type=settings.encoder_reparameterization_type,
        encoder_num_layers=settings.encoder_num_layers,
        encoder_dropout=settings.encoder_dropout,
        task_type=task_type,
        **kwargs,
    )


PEFT_CONFIGS = {
    "LORA": _lora,
    "PROMPT_TUNING": _prompt_tuning,
    "PREFIX_TUNING": _prefix_tuning,
    "P_TUNING": _p_tuning,
}


def apply_peft(model: Any, settings: ModelSettings, tokenizer_path: Path) -> Any:
    """Wrap `model` in a new adapter (peft_settings) or a saved one (adapter_path)."""
    from peft import PeftModel, get_peft_model

    if settings.adapter_path is not None:
        try:
            return PeftModel.from_pretrained(model, settings.adapter_path, is_trainable=settings.is_trainable)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the adapter at {settings.adapter_path}: {exc}") from exc
    if settings.peft_settings is None:
        return model
    peft = settings.peft_settings
    task_type = peft.task_type or TASK_TYPES[settings.model_type]
    config = PEFT_CONFIGS[peft.name](peft, task_type, tokenizer_path)
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ModelError(f"model_settings.peft_settings: {exc}") from exc
