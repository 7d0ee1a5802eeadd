"""DeepSpeed configs by name: the presets shipped beside this file, and the values turbo owns.

Pure Python (no torch), so the settings can check a config before anything heavy happens. Values
that DeepSpeed and `trainer_settings` both define are always taken from `trainer_settings`: a
config may leave them out, set them to "auto" or repeat turbo's value; any other value is an error.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from turbo.errors import SettingsError
from turbo.reading import path_problem, read_json

PRESETS_FOLDER = Path(__file__).parent
PRESETS = ("zero1", "zero2", "zero2_offload", "zero3", "zero3_offload")

# DeepSpeed key (dotted) -> the trainer_settings field that owns it
SHARED_VALUES = {
    "train_micro_batch_size_per_gpu": "per_device_train_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "gradient_clipping": "max_grad_norm",
    "fp16.enabled": "fp16",
    "bf16.enabled": "bf16",
}
GATHER_ON_SAVE = "stage3_gather_16bit_weights_on_model_save"


class DeepSpeedConfigError(SettingsError, ValueError):
    """A DeepSpeed config file that cannot be read (a ValueError, so settings validators report it)."""


def load_config(value: str | dict[str, Any]) -> dict[str, Any]:
    """A preset name, a path to a JSON file, or the config itself -> the config (a copy)."""
    if isinstance(value, dict):
        return copy.deepcopy(value)
    problem = path_problem(value)
    if problem:
        raise ValueError(f"the DeepSpeed config path {problem}")
    path = PRESETS_FOLDER / f"{value}.json" if value in PRESETS else Path(value)
    if value.isidentifier() and value not in PRESETS and not path.is_file():
        raise ValueError(f"{value!r} is neither a DeepSpeed preset ({', '.join(PRESETS)}) nor a JSON file")
    try:
        config = read_json(path, "DeepSpeed config", DeepSpeedConfigError)
    except DeepSpeedConfigError as exc:
        hint = f" (or give a preset: {', '.join(PRESETS)})" if "does not exist" in str(exc) else ""
        raise ValueError(f"{exc}{hint}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return config


def _get(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def conflicts(config: dict[str, Any], trainer_values: dict[str, Any]) -> list[str]:
    """Every shared value the config sets differently from trainer_settings, as a message."""
    problems = []
    for key, field in SHARED_VALUES.items():
        value = _get(config, key)
        if value is None or value == "auto" or value == trainer_values[field]:
            continue
        problems.append(
            f"the DeepSpeed config sets {key}={value!r} but trainer_settings.{field} is "
            f'{trainer_values[field]!r}; set it in trainer_settings and write "auto" (or nothing) '
            "in the DeepSpeed config"
        )
    if _get(config, f"zero_optimization.{GATHER_ON_SAVE}") is False:
        problems.append(
            f"zero_optimization.{GATHER_ON_SAVE} is false: a ZeRO-3 run would save an empty model or "
            "adapter; remove it (turbo saves gathered weights)"
        )
    return problems


def zero3(value: str | dict[str, Any] | None) -> bool:
    """Whether trainer_settings.deepspeed (a preset name, a file or a dict; None: off) shards the
    parameters (ZeRO stage 3)."""
    return value is not None and load_config(value).get("zero_optimization", {}).get("stage") == 3


def resolve(value: str | dict[str, Any]) -> dict[str, Any]:
    """The config to hand to transformers: shared values are "auto" (filled from the trainer's
    arguments) and ZeRO-3 gathers the full weights when the model is saved."""
    config = load_config(value)
    for key in SHARED_VALUES:
        *parents, last = key.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = "auto"
    config.setdefault("train_batch_size", "auto")
    zero = config.get("zero_optimization", {})
    if zero.get("stage") == 3:
        zero[GATHER_ON_SAVE] = True
    return config
