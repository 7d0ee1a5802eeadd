"""Older spellings that existing experiment files use, kept in one place.

Each entry maps a settings class name to {old key: new key}. A file that uses the old key
validates as if it used the new one; using both is an error.
"""

RENAMED_FIELDS: dict[str, dict[str, str]] = {
    "TrainerSettings": {
        "evaluation_strategy": "eval_strategy",
        "no_cuda": "use_cpu",
    },
    "BaseTrainExperimentSettings": {
        "training_arguments": "trainer_settings",
        "wandb_settings": "logging_settings",
    },
    "ChatCherryPickSettings": {"generation_config": "generator_transformers_settings"},
    "ModelTransformersSettings": {"torch_dtype": "dtype"},
    "VLLMSamplingSettings": {"stop_strings": "stop"},
    # the original's multimodal datasets: truncate_top drops the earliest messages (keeps the end)
    "ChatDatasetSettings": {"truncate_top": "keep_end"},
    "ChatRenderSettings": {"truncate_top": "keep_end"},
    "BaseSamplingSettings": {"N": "num_answers"},
    "DdpoExperimentSettings": {"chat_tokenizer_settings": "tokenizer_settings"},
    "SamplingDatasetSettings": {"chat_dataset": "chat_settings"},
    "LoraSettings": {"lora_bias": "bias"},  # LLaVA's name
    "MediaSettings": {"max_num_image_per_sample": "max_media_per_sample"},  # DeepSpeed-VisualChat's name
    "WandbSettings": {"group_name": "group"},  # the other loggers' (and the original files') name
}


def apply_renames(class_names: list[str], data: dict) -> dict:
    """Rename old keys for a class or any of its bases (a subclass inherits the old names)."""
    renames = {old: new for name in class_names for old, new in RENAMED_FIELDS.get(name, {}).items()}
    if not any(old in data for old in renames):
        return data
    data = dict(data)
    for old, new in renames.items():
        if old in data:
            if new in data:
                raise ValueError(f"'{old}' is the old name of '{new}'; set only '{new}'")
            data[new] = data.pop(old)
    return data


def infer_logging_type(data: object) -> object:
    """A wandb block without a type field (`project_name`, `run_name`, `entity`) is wandb."""
    if isinstance(data, dict) and "logging_type" not in data and "project_name" in data:
        return {**data, "logging_type": "wandb"}
    return data


def nest_legacy_rm_settings(data: object) -> object:
    """Sampling files of the older layout: top-level `rm`, `tokenizer_settings`, `rm_batch_size`."""
    if not isinstance(data, dict) or "rm" not in data:
        return data
    if "rm_settings" in data:
        raise ValueError("'rm' is the old layout of 'rm_settings'; set only 'rm_settings'")
    data = dict(data)
    rm_settings: dict = {"model_settings": data.pop("rm")}
    if "tokenizer_settings" in data:
        rm_settings["tokenizer_settings"] = data.pop("tokenizer_settings")
    if "rm_batch_size" in data:
        rm_settings["batch"] = data.pop("rm_batch_size")
    return {**data, "rm_settings": rm_settings}


PROJECTOR_TYPE_ALIASES = {"c_abstractor": "c_abs"}


def normalize_projector(data: object) -> object:
    """A projector given as its type name ("llava") is {"projector_type": "llava"}; old names map to new."""
    if isinstance(data, str):
        data = {"projector_type": data}
    if (
        isinstance(data, dict)
        and isinstance(data.get("projector_type"), str)
        and (data["projector_type"] in PROJECTOR_TYPE_ALIASES)
    ):
        data = {**data, "projector_type": PROJECTOR_TYPE_ALIASES[data["projector_type"]]}
    return data


CHAT_RENDER_KEYS = ("prompt_template", "max_tokens_count", "keep_end")


def nest_chat_settings(data: object) -> object:
    """Dataset settings written like a chat dataset (`prompt_template`, `max_tokens_count` at the top)
    are read as their `chat_settings` block."""
    if not isinstance(data, dict) or not any(key in data for key in CHAT_RENDER_KEYS):
        return data
    data = dict(data)
    nested = dict(data.get("chat_settings") or {})
    for key in CHAT_RENDER_KEYS:
        if key in data:
            if key in nested:
                raise ValueError(f"'{key}' is set both at the top and in chat_settings; set it only once")
            nested[key] = data.pop(key)
    return {**data, "chat_settings": nested}


def move_generation_eos_token(data: object, custom_key: str, transformers_key: str) -> object:
    """`generation_eos_token` in the custom generation block (the original's name) is a stop string of
    the transformers generation block: generation ends after that token."""
    if not isinstance(data, dict) or not isinstance(data.get(custom_key), dict):
        return data
    custom = dict(data[custom_key])
    if "generation_eos_token" not in custom:
        return data
    token = custom.pop("generation_eos_token")
    generation = dict(data.get(transformers_key) or {})
    if generation.get("stop_strings") not in (None, token, [token]):
        raise ValueError(
            f"{custom_key}.generation_eos_token is the old spelling of {transformers_key}.stop_strings; "
            "set only stop_strings"
        )
    if token is not None:
        generation["stop_strings"] = token
    return {**data, custom_key: custom, transformers_key: generation}


def nest_field(data: object, key: str, block: str) -> object:
    """`key` written beside `block` (the original's place for it) is read as `block.key`."""
    if not isinstance(data, dict) or key not in data:
        return data
    data = dict(data)
    nested = dict(data.get(block) or {})
    if key in nested and nested[key] != data[key]:
        raise ValueError(f"'{key}' is set both here and in {block}; set it only in {block}")
    nested[key] = data.pop(key)
    return {**data, block: nested}


def lift_keys(data: dict, inner: dict, keys: tuple[str, ...], conflict: str) -> tuple[dict, dict]:
    """`keys` written in the block `inner` (the original's place for them) are read beside it, in `data`;
    a key already there with another value is an error: "<key> <conflict>". Returns new (data, inner)."""
    data, inner = dict(data), dict(inner)
    for key in keys:
        if key in inner:
            value = inner.pop(key)
            if data.setdefault(key, value) != value:
                raise ValueError(f"{key} {conflict}")
    return data, inner


def default_peft_name(data: object) -> object:
    """peft_settings without `name` are LoRA, as in the original."""
    if isinstance(data, dict) and "name" not in data:
        return {**data, "name": "LORA"}
    return data


SEQUENCE_PARALLEL_ADVICE = (
    "sequence parallelism (Ulysses) is not available in turbo; remove sequence_parallel_degree and "
    "trainer_settings.sequence_parallel (or set them to 1) and fit long sequences with DeepSpeed ZeRO-3 "
    "(trainer_settings.deepspeed) and gradient_checkpointing"
)


def refuse_sequence_parallel(data: object) -> object:
    """The original's Ulysses sequence parallelism: refused with what to write instead."""
    if not isinstance(data, dict):
        return data
    if str(data.get("model_type", "")).endswith("_with_ulysses"):
        raise ValueError(
            f"model_type '{data['model_type']}': {SEQUENCE_PARALLEL_ADVICE}; use model_type 'causal'"
        )
    for key in ("sequence_parallel_degree", "sequence_parallel"):
        if key in data:
            if data[key] not in (1, None):
                raise ValueError(SEQUENCE_PARALLEL_ADVICE)
            data = {name: value for name, value in data.items() if name != key}  # 1: no parallelism
    return data
