"""The shape of the DeepSpeed config sections turbo's users write, checked before DeepSpeed runs.

DeepSpeed itself validates its config only when the engine starts (after the model has loaded),
and some wrong types reach it as a TypeError. These models check the common sections early so a
config such as `{"fp16": "yes"}` fails at validation, at its field path. Keys not listed here are
handed to DeepSpeed unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Auto = Literal["auto"]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveSize = Annotated[int, Field(gt=0)] | Annotated[float, Field(gt=0)]
Size = Annotated[int, Field(ge=0)] | Annotated[float, Field(ge=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)


class _Precision(_Section):
    enabled: bool | Auto = False
    loss_scale: float | None = Field(None, ge=0)
    initial_scale_power: int | None = Field(None, ge=0, le=64)
    loss_scale_window: int | None = Field(None, gt=0)
    hysteresis: int | None = Field(None, ge=0)
    min_loss_scale: float | None = Field(None, ge=0)


class _Offload(_Section):
    device: Literal["none", "cpu", "nvme"] = "none"
    pin_memory: bool = False
    nvme_path: str | None = None


class _Zero(_Section):
    stage: Literal[0, 1, 2, 3] = 0
    offload_optimizer: _Offload | None = None
    offload_param: _Offload | None = None
    overlap_comm: bool | None = None
    contiguous_gradients: bool | None = None
    allgather_partitions: bool | None = None
    reduce_scatter: bool | None = None
    round_robin_gradients: bool | None = None
    allgather_bucket_size: PositiveSize | Auto | None = None
    reduce_bucket_size: PositiveSize | Auto | None = None
    sub_group_size: PositiveSize | None = None
    stage3_prefetch_bucket_size: Size | Auto | None = None
    stage3_param_persistence_threshold: Size | Auto | None = None
    stage3_max_live_parameters: Size | None = None
    stage3_max_reuse_distance: Size | None = None
    stage3_gather_16bit_weights_on_model_save: bool | None = None


class _Named(_Section):
    type: str
    params: dict[str, Any] = {}


class DeepSpeedConfig(_Section):
    train_batch_size: PositiveInt | Auto | None = None
    train_micro_batch_size_per_gpu: PositiveInt | Auto | None = None
    gradient_accumulation_steps: PositiveInt | Auto | None = None
    gradient_clipping: Size | Auto | None = None
    steps_per_print: int | None = Field(None, gt=0)
    wall_clock_breakdown: bool | None = None
    zero_allow_untested_optimizer: bool | None = None
    fp16: _Precision | None = None
    bf16: _Precision | None = None
    zero_optimization: _Zero | None = None
    optimizer: _Named | None = None
    scheduler: _Named | None = None


def shape_problems(config: dict[str, Any]) -> list[str]:
    """'fp16: Input should be a JSON object (got 'yes')' for every key of the wrong shape."""
    try:
        DeepSpeedConfig.model_validate(config)
    except ValidationError as exc:
        found: dict[str, tuple[list[str], Any]] = {}
        for err in exc.errors():
            where = _key_path(config, err["loc"])
            message = "a JSON object" if err["type"] == "model_type" else err["msg"]
            messages, _ = found.setdefault(where, ([], err.get("input")))
            messages.append(message.removeprefix("Input should be "))
        return [
            f"{where}: Input should be {' or '.join(dict.fromkeys(messages))} (got {value!r:.60})"
            if all(not m.startswith("Field required") for m in messages)
            else f"{where}: {messages[0]}"
            for where, (messages, value) in found.items()
        ]
    return []


def _key_path(config: Any, loc: tuple[Any, ...]) -> str:
    """The loc without pydantic's union-member tags: only the keys that exist in the config."""
    keys, node = [], config
    for part in loc:
        if isinstance(node, dict) and part in node:
            keys.append(str(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int):
            keys.append(str(part))
            node = node[part] if part < len(node) else None
        elif not isinstance(node, dict) or isinstance(part, str) and not part.isidentifier():
            continue  # a union member tag such as "bool" or "literal['auto']"
        else:
            keys.append(str(part))  # a missing required key
    return ".".join(keys)
