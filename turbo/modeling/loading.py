"""Loading a model from a local folder: Auto class by model_type, tokens, embeddings, adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turbo.errors import ModelError
from turbo.modeling.attention import attention_problem
from turbo.modeling.embeddings import fit_embeddings_to_tokenizer, initialize_new_embeddings
from turbo.modeling.peft import apply_peft
from turbo.modeling.quantization import prepare_for_adapter_training, quantization_config
from turbo.modeling.tokenizer import SPECIAL_TOKEN_NAMES
from turbo.settings.model import ModelSettings
from turbo.settings.tokenizer import TokenizerSettings

AUTO_CLASSES = {"causal": "AutoModelForCausalLM", "seq_cls": "AutoModelForSequenceClassification"}


def load_base_model(settings: ModelSettings) -> Any:
    """The transformers model alone, no tokens or adapters."""
    import torch
    import transformers

    path = Path(settings.model_path)
    if not path.is_dir():
        raise ModelError(f"model_settings.model_path: {path} is not a folder")
    kwargs: dict[str, Any] = dict(settings.model_kwargs)
    dtype = settings.transformers_settings.dtype
    kwargs["dtype"] = (dtype if dtype == "auto" else getattr(torch, dtype)) if dtype else torch.float32
    quantization = quantization_config(settings)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    if settings.transformers_settings.low_cpu_mem_usage is not None:
        kwargs["low_cpu_mem_usage"] = settings.transformers_settings.low_cpu_mem_usage
    if settings.attn_implementation is not None:
        problem = attention_problem(settings.attn_implementation)
        if problem:
            raise ModelError(f"model_settings.attn_implementation: {problem}")
        kwargs["attn_implementation"] = settings.attn_implementation
    auto_class = getattr(transformers, AUTO_CLASSES[settings.model_type])
    try:
        return auto_class.from_pretrained(
            path,
            local_files_only=True,
            trust_remote_code=settings.transformers_settings.trust_remote_code,
            **kwargs,
        )
    except Exception as exc:  # noqa: BLE001 - whatever transformers raises is reported against a field
        raise model_load_error(exc, path, settings, "model_settings") from exc


def passed_through(settings: Any, where: str) -> list[str]:
    """The fields of a model's settings that go to from_pretrained as the user wrote them: each
    model_kwargs key and each transformers_settings field set in the file."""
    fields = [f"{where}.model_kwargs.{key}" for key in settings.model_kwargs]
    transformers_settings = settings.transformers_settings
    fields += [
        f"{where}.transformers_settings.{name}"
        for name in sorted(transformers_settings.model_fields_set)
        if getattr(transformers_settings, name) != type(transformers_settings).model_fields[name].default
    ]
    return fields


def model_load_error(exc: Exception, path: Path, settings: Any, where: str) -> ModelError:
    """One message for a failed from_pretrained: against the settings passed through to transformers
    (model_kwargs, transformers_settings) when the folder's own config loads and the failure is not a
    missing file or package; else against model_path."""
    from turbo.modeling.tokenizer import describe

    fields = passed_through(settings, where)
    if fields and not isinstance(exc, OSError | ImportError) and _config_loads(path, settings):
        return ModelError(
            f"{', '.join(fields)}: transformers refused to load the model at {path} with "
            f"{'this setting' if len(fields) == 1 else 'these settings'}: {describe(exc)}"
        )
    return ModelError(f"{where}.model_path: cannot load a model from {path}: {describe(exc)}")


def _config_loads(path: Path, settings: Any) -> bool:
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(
            path, local_files_only=True, trust_remote_code=settings.transformers_settings.trust_remote_code
        )
    except Exception:  # noqa: BLE001
        return False
    return True


def load_model(settings: ModelSettings, tokenizer: Any, tokenizer_settings: TokenizerSettings) -> Any:
    """Base model fitted to the tokenizer (rows, special ids, new-token rows), then PEFT."""
    model = load_base_model(settings)
    # tokens added for embeddings_initialization_strategy need rows: asking for them implies resizing, as
    # does an adapter that carries embeddings resized to this tokenizer (a train_multimodal output)
    resize = (
        settings.resize_token_embeddings
        or bool(settings.embeddings_initialization_strategy)
        or adapter_embedding_rows(settings) == len(tokenizer)
    )
    fit_embeddings_to_tokenizer(model, tokenizer, resize)
    if settings.embeddings_initialization_strategy:
        initialize_new_embeddings(model, tokenizer, settings.embeddings_initialization_strategy)
    copy_special_token_ids(model, tokenizer)
    model = prepare_for_adapter_training(model, settings)
    return apply_peft(model, settings, Path(tokenizer_settings.tokenizer_path or settings.model_path))


def adapter_embedding_rows(settings: ModelSettings) -> int | None:
    """The rows of the input embeddings that settings.adapter_path carries (PEFT saves them when training
    resized them), else None."""
    if settings.adapter_path is None:
        return None
    file = Path(settings.adapter_path) / "adapter_model.safetensors"
    if not file.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 - a safetensors handle is not a dict
            if key.endswith("embed_tokens.weight"):
                return int(handle.get_slice(key).get_shape()[0])
    return None


def copy_special_token_ids(model: Any, tokenizer: Any) -> None:
    """The model (and its generation config) use the tokenizer's special token ids."""
    for name in SPECIAL_TOKEN_NAMES:
        token_id = getattr(tokenizer, f"{name}_id", None)
        if token_id is None:
            continue
        setattr(model.config, f"{name}_id", token_id)
        generation_config = getattr(model, "generation_config", None)
        if generation_config is not None and hasattr(generation_config, f"{name}_id"):
            setattr(generation_config, f"{name}_id", token_id)
