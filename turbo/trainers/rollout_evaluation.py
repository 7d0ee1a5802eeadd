"""The held-out evaluation of the rollout trainers (PPO, GRPO): greedy answers to the validation prompts,
scored by the run's rewards (eval_reward/...) and written to eval_answers/step_N.jsonl."""

from __future__ import annotations

from typing import Any

import torch

from turbo.trainers.rewards import RewardFunction
from turbo.trainers.rollout import collect
from turbo.trainers.rollout_distributed import generation_model, sync_rollout_engine

EVAL_ANSWERS = "eval_answers"


def evaluate(trainer: Any) -> dict[str, float]:
    """A trainer's evaluation: greedy answers to its validation prompts scored by its rewards
    (eval_reward/...), written to eval_answers/step_N.jsonl; then the evaluation callbacks (cherry-picks)."""
    from turbo.io import write_jsonl

    metrics: dict[str, float] = {}
    if trainer.eval_prompts:
        metrics, rows = evaluate_prompts(
            trainer,
            trainer.engine,
            trainer.model,
            trainer.processing_class,
            trainer.eval_prompts,
            trainer.rewards,
            trainer.args.per_device_eval_batch_size,
        )
        if trainer.is_world_process_zero():
            write_jsonl(trainer.folder / EVAL_ANSWERS / f"step_{trainer.state.global_step}.jsonl", rows)
        trainer.log(metrics)
    trainer.control = trainer.callback_handler.on_evaluate(
        trainer.args, trainer.state, trainer.control, metrics
    )
    return metrics


def evaluate_prompts(
    trainer: Any,
    engine: Any,
    model: Any,
    tokenizer: Any,
    prompts: list[dict[str, Any]],
    rewards: list[tuple[Any, RewardFunction]],
    batch: int,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Greedy answers to the held-out prompts and their rewards (eval_reward/...), and one row per prompt."""
    with generation_model(trainer, trainer.model_wrapped) as policy:  # every rank answers every prompt
        sync_rollout_engine(engine, policy, trainer.state.global_step)
        parts = [
            collect(engine, policy, tokenizer, prompts[i : i + batch], rewards, n=1, greedy=True)
            for i in range(0, len(prompts), batch)
        ]
    values = torch.cat([part.rewards for part in parts])
    metrics = {"eval_reward/mean": values.mean().item()}
    labels = parts[0].per_function.keys()
    for label in labels:
        column = [value for part in parts for value in part.per_function[label]]
        metrics[f"eval_reward/{label}/mean"] = sum(column) / len(column)
    lengths = torch.cat([part.lengths for part in parts]).float()
    metrics["eval_answer_length"] = lengths.mean().item()
    rows = [
        {
            "id": prompt["id"],
            "prompt": prompt["prompt"],
            "reference": prompt["reference"],
            "answer": answer,
            "reward": part.rewards[i].item(),
            "rewards": {label: part.per_function[label][i] for label in labels},
            **({"segments": part.trajectories[i]} if part.trajectories is not None else {}),
        }
        for part in parts
        for i, (prompt, answer) in enumerate(zip(part.prompts, part.answers, strict=True))
    ]
    return metrics, rows
