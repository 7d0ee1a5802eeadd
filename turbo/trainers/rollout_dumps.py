"""Rollout dumps of train_grpo and train_ppo: the answers of a step, one JSON line each, in
rollouts/step_N.jsonl, so a user can read what the policy does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROLLOUTS = "rollouts"


def dump_due(step: int, every: int | None, logging_steps: int) -> bool:
    """Whether the step numbered `step` (1-based, as logged) is dumped: every k-th step (`every`), at the
    logging steps (None), or never (0)."""
    period = logging_steps if every is None else every
    return period > 0 and step % period == 0


def rollout_rows(rollout: Any, advantages: list[float]) -> list[dict[str, Any]]:
    """One row per answer: prompt id, prompt, reference, answer, total reward, the reward of each function,
    advantage, finished (ended with the end token) or truncated (cut at max_new_tokens), token count. With
    tools, `answer` is the final answer and `segments` the trajectory: {"role": "policy" | "tool", "text",
    "tool"?, "trained", "error"?} in order; trained_tokens counts the policy's tokens."""
    labels = list(rollout.per_function)
    rows = [
        {
            "id": prompt["id"],
            "prompt": prompt["prompt"],
            "reference": prompt.get("reference"),
            "answer": answer,
            "reward": rollout.rewards[row].item(),
            "rewards": {label: rollout.per_function[label][row] for label in labels},
            "advantage": advantages[row],
            "finished": rollout.finished[row],
            "truncated": not rollout.finished[row],
            "tokens": int(rollout.lengths[row]),
        }
        for row, (prompt, answer) in enumerate(zip(rollout.prompts, rollout.answers, strict=True))
    ]
    trajectories = getattr(rollout, "trajectories", None)
    if trajectories is not None:  # with tools: `answer` is the final answer, `segments` the whole trajectory
        trained = rollout.policy_mask.sum(-1).tolist()
        for row, segments in zip(rows, trajectories, strict=True):
            row["segments"] = segments
        for row, count in zip(rows, trained, strict=True):
            row["trained_tokens"] = int(count)
    return rows


def dump_rollout(trainer: Any, every: int | None, rollout: Any, advantages: list[float]) -> None:
    """Write rollouts/step_N.jsonl for the step being trained when it is due: on several processes,
    every rank's answers (rank 0's first), written once by rank 0."""
    from turbo.io import write_jsonl
    from turbo.trainers.rollout_distributed import gather_rows

    step = trainer.state.global_step + 1  # the step this update is logged as
    logging_steps = int(trainer.state.logging_steps or trainer.args.logging_steps)
    if not dump_due(step, every, logging_steps):
        return
    rows = gather_rows(rollout_rows(rollout, advantages))
    if rows is not None and trainer.is_world_process_zero():
        write_jsonl(Path(trainer.folder) / ROLLOUTS / f"step_{step}.jsonl", rows)
