"""The shape of the DeepSpeed config sections turbo's users write, checked before DeepSpeed runs.

DeepSpeed itself validates its config only when the engine starts (after the model has loaded),
and some wrong types reach it as a TypeError. These models check the common sections early so a
config such as `{"fp16": "yes"}` fails at validation, at its field path. Keys not listed here are
handed to DeepSpeed unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Auto = Literal["auto"]


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
    allgather_bucket_size: int | float | Auto | None = Field(None, gt=0)
    reduce_bucket_size: int | float | Auto | None = Field(None, gt=0)
    sub_group_size: int | float | None = Field(None, gt=0)
    stage3_prefetch_bucket_size: int | float | Auto | None = Field(None, ge=0)
    stage3_param_persistence_threshold: int | float | Auto | None = Field(None, ge=0)
    stage3_max_live_parameters: int | float | None = Field(None, ge=0)
    stage3_max_reuse_distance: int | float | None = Field(None, ge=0)
    stage3_gather_16bit_weights_on_model_save: bool | None = None


class _Named(_Section):
    type: str
    params: dict[str, Any] = {}


class DeepSpeedConfig(_Section):
    train_batch_size: int | Auto | None = Field(None, gt=0)
    train_micro_batch_size_per_gpu: int | Auto | None = Field(None, gt=0)
    gradient_accumulation_steps: int | Auto | None = Field(None, gt=0)
    gradient_clipping: float | int | Auto | None = Field(None, ge=0)
    steps_per_print: int | None = Field(None, gt=0)
    wall_clock_breakdown: bool | None = None
    zero_allow_untested_optimizer: bool | None = None
    fp16: _Precision | None = None
    bf16: _Precision | None = None
    zero_optimization: _Zero | None = None
    optimizer: _Named | None = None
    scheduler: _Named | None = None


def shape_problems(config: dict[str, Any]) -> list[str]:
    """'fp16: Input should be a valid dictionary' for every section of the wrong shape."""
    try:
        DeepSpeedConfig.model_validate(config)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(part) for part in err['loc'])}: "
            f"{'Input should be a JSON object' if err['type'] == 'model_type' else err['msg']} "
            f"(got {err.get('input')!r:.60})"
            for err in exc.errors()
        ]
    return []
