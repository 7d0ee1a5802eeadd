"""train_grpo and train_ppo on several processes (torchrun, accelerate launch, DeepSpeed, FSDP): what a
rollout step does differently when the policy is wrapped or sharded, as plain functions.

- Each rank samples answers to its own share of the prompts (the Trainer's sampler shards them); the
  answers of one prompt (a GRPO group) are sampled, scored and turned into advantages on that rank.
- Generation runs on the unwrapped policy; under DeepSpeed ZeRO-3 its parameters are gathered for the
  rollout and ZeRO's hooks are taken off meanwhile (as TRL's unwrap_model_for_generation does), under
  FSDP2 every sharded module is unsharded and kept whole until the rollout ends, so each rank generates
  on its own, however many tokens its answers take.
- A shared vLLM server is brought to the new policy once per step: rank 0 saves and loads the adapter,
  the other ranks wait for its name and sample with it.
- Metrics are averaged over the ranks when logged (add_metric_means); the rollout dumps gather every
  rank's answers into one file written by rank 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from turbo.generators.rollout import sync_engine


def distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_zero3(trainer: Any) -> bool:
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and plugin.zero_stage == 3


@contextmanager
def generation_model(trainer: Any, model: Any) -> Iterator[Any]:
    """The policy to generate with: unwrapped from DDP / DeepSpeed; under ZeRO-3 with its parameters
    gathered on every rank and ZeRO's forward hooks off until the block ends (TRL's
    unwrap_model_for_generation), so that ranks need not run the same number of forward passes."""
    unwrapped = trainer.accelerator.unwrap_model(model)
    sharded = fsdp2_modules(unwrapped)
    if sharded:
        with fsdp2_unsharded(sharded):
            yield unwrapped
        return
    if not is_zero3(trainer) or not hasattr(model, "optimizer"):
        yield unwrapped
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters())):
        offload = zero3_offload(model)
        for param in offload_params(offload.module):
            param.ds_active_sub_modules.clear()
        for hook in [*offload.forward_hooks, *offload.backward_hooks]:
            hook.remove()
        offload.forward_hooks, offload.backward_hooks = [], []
        try:
            yield unwrapped
        finally:
            coordinator = getattr(offload, "param_coordinator", None)
            if coordinator is not None and not coordinator.is_invalid_trace():
                coordinator._invalidate_trace()
            offload._register_deepspeed_module(offload.module)


def fsdp2_modules(model: torch.nn.Module) -> list[Any]:
    """The modules FSDP2 (fully_shard) sharded, root first; none without FSDP2."""
    from torch.distributed.fsdp import FSDPModule

    return [module for module in model.modules() if isinstance(module, FSDPModule)]


@contextmanager
def fsdp2_unsharded(modules: list[Any]) -> Iterator[None]:
    """Every FSDP2 module's parameters gathered for the block (one collective all-gather each, all ranks
    at once) and kept whole across its forward passes, so that generate runs no collective and ranks may
    take different numbers of steps; sharded again afterwards."""
    for module in modules:
        module.set_reshard_after_forward(False)
        module.unshard()
    try:
        yield
    finally:
        for module in modules:
            module.reshard()
            module.set_reshard_after_forward(True)


def zero3_offload(engine: Any) -> Any:
    """The object that holds ZeRO-3's module hooks (DeepSpeed 0.19: the optimizer's parameter_offload)."""
    return getattr(engine.optimizer, "parameter_offload", engine.optimizer)


def offload_params(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [param for _, param in module.named_parameters(recurse=True)] + list(
        module.ds_external_parameters()
    )


def sync_rollout_engine(engine: Any, model: Any, step: int) -> float:
    """Bring the rollout engine to the policy of step `step` (sync_engine). A vLLM server shared by all
    ranks loads one adapter per step: rank 0 saves and loads it, the others wait for its name (a
    broadcast, which is also the barrier) and sample with it; they never load or unload adapters."""
    from turbo.generators.vllm_server import VllmServerEngine

    if not isinstance(engine, VllmServerEngine) or not distributed():
        return sync_engine(engine, model, step)
    import torch.distributed as dist

    if getattr(engine, "synced_step", None) == step:
        return 0.0
    seconds = sync_engine(engine, model, step) if dist.get_rank() == 0 else 0.0
    name = [engine.loaded]
    dist.broadcast_object_list(name, src=0)
    if dist.get_rank() != 0:
        engine.adapters, engine.synced_step, engine.loads_adapters = [name[0]], step, False
    return seconds


def gather_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Every rank's rows, in rank order, on rank 0 (None on the others); the rows themselves alone."""
    if not distributed():
        return rows
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(rows, gathered, dst=0)
    return None if gathered is None else [row for part in gathered for row in part]


def average_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Average the gradients of parameters outside the DDP wrapper (PPO's value model) over the ranks,
    as DDP does for the policy's, so that every rank takes the same step."""
    if not distributed():
        return
    import torch.distributed as dist

    world = dist.get_world_size()
    for param in parameters:
        if param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad.div_(world)


def mean_over_ranks(count: int, device: Any) -> float:
    """The mean of `count` over the ranks: a loss normalised by it, averaged over the ranks as DDP does
    with gradients, is normalised by the count of the whole (global) batch."""
    if not distributed():
        return float(count)
    import torch.distributed as dist

    total = torch.tensor([float(count)], dtype=torch.float64, device=device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.item() / dist.get_world_size()


def whiten_over_ranks(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """masked_whiten with the mean and variance of every rank's masked entries (PPO's advantages and
    rewards), so N ranks whiten as one process with their rows together does."""
    from turbo.trainers.losses.ppo import masked_whiten

    if not distributed():
        return masked_whiten(values, mask, shift_mean)
    import torch.distributed as dist

    weights = mask.to(values.dtype)
    totals = torch.stack([(values * weights).sum(), weights.sum()]).double()
    dist.all_reduce(totals, op=dist.ReduceOp.SUM)
    count = totals[1].clamp(min=1)
    mean = (totals[0] / count).to(values.dtype)
    centred = values - mean
    squares = (centred**2 * weights).sum().double().reshape(1)
    dist.all_reduce(squares, op=dist.ReduceOp.SUM)
    variance = (squares[0] / (totals[1] - 1).clamp(min=1)).to(values.dtype)
    whitened = centred * torch.rsqrt(variance + 1e-8)
    return whitened if shift_mean else whitened + mean


@contextmanager
def schedule_held(trainer: Any, hold: bool) -> Iterator[None]:
    """Under DeepSpeed the engine steps the optimiser and the learning-rate schedule inside the backward
    pass; an update that is not the step's last (num_iterations, num_mini_batches) must not advance the
    schedule, which the Trainer steps once per step as it does without DeepSpeed."""
    engine = trainer.model_wrapped if hold and trainer.is_deepspeed_enabled else None
    scheduler = getattr(engine, "lr_scheduler", None)
    if scheduler is None:
        yield
        return
    engine.lr_scheduler = None
    try:
        yield
    finally:
        engine.lr_scheduler = scheduler
