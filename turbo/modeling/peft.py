"""Settings -> peft configs, plus loading a saved adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turbo.errors import ModelError
from turbo.settings.model import (
    PEFT_TASK_TYPES,
    LoraSettings,
    ModelSettings,
    PrefixTuningSettings,
    PromptTuningSettings,
    PTuningSettings,
)

# parts of a model that are not its language model: target_modules "auto" leaves them alone
NOT_LANGUAGE_MODEL = (
    "vision_tower",
    "vision_model",
    "visual",
    "mm_projector",
    "multi_modal_projector",
    "projector",
    "encoders",
    "projectors",
    "audio_tower",
)


def linear_layer_names(model: Any) -> list[str]:
    """target_modules "auto": every linear layer of the language model, found from the model itself,
    without the output head (lm_head, a classification score) and any vision tower or projector.

    The short names (q_proj, ...) when no left-out module shares them, else the full module names."""
    import torch

    heads = {id(model.get_output_embeddings())} if hasattr(model, "get_output_embeddings") else set()
    for name in ("score", "classifier", "lm_head"):
        head = getattr(model, name, None)
        if head is not None:
            heads.add(id(head))
    chosen: list[str] = []
    left_out: set[str] = set()
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        parts = name.split(".")
        if id(module) in heads or any(part in NOT_LANGUAGE_MODEL for part in parts):
            left_out.add(parts[-1])
        else:
            chosen.append(name)
    if not chosen:
        raise ModelError(
            'model_settings.peft_settings.target_modules: "auto" found no linear layer in the model'
        )
    short = sorted({name.rsplit(".", 1)[-1] for name in chosen})
    return short if not set(short) & left_out else chosen


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
            loaded = PeftModel.from_pretrained(
                model, settings.adapter_path, is_trainable=settings.is_trainable
            )
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the adapter at {settings.adapter_path}: {exc}") from exc
        return no_casts_under_autocast(loaded)
    if settings.peft_settings is None:
        return model
    peft = settings.peft_settings
    if isinstance(peft, LoraSettings) and peft.target_modules == "auto":
        peft = peft.model_copy(update={"target_modules": linear_layer_names(model)})
    task_type = peft.task_type or PEFT_TASK_TYPES[settings.model_type]
    config = PEFT_CONFIGS[peft.name](peft, task_type, tokenizer_path)
    try:
        return no_casts_under_autocast(get_peft_model(model, config))
    except ValueError as exc:
        raise ModelError(f"model_settings.peft_settings: {exc}") from exc


class OutsideAutocast:
    """A LoRA layer's `cast_input_dtype_enabled`: true outside autocast on the device of its weights."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    def __bool__(self) -> bool:
        import torch

        parameter = next(self.layer.parameters(), None)
        return parameter is None or not torch.is_autocast_enabled(parameter.device.type)


def no_casts_under_autocast(model: Any) -> Any:
    """float32 adapters on a bfloat16 model: peft casts each adapter's input to float32, and the bfloat16
    autocast of training casts it back for the matmul (two copies of the layer's input per adapter, each
    way: about 5 % of a SmolLM2 LoRA forward + backward on a CPU). Under autocast that cast is skipped
    (the same values: autocast reads the bfloat16 input as it is); outside it (generation, float32
    training) peft casts as before."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = OutsideAutocast(module)
    return model
