"""The trainer's side of rollouts that overlap training (rollout_settings.async; the engine's side is
turbo.generators.async_rollouts): the prompt batches of the next max_staleness steps are read ahead from
the Trainer's epoch iterator (the same batches, in the same order, as without overlap), and their
answers are asked of the vLLM server as soon as the adapter of the current step is loaded. Three small
hooks in GrpoTrainer call these functions; without async they do nothing.

The batches read ahead end with the epoch (the first step of the next epoch samples its own answers,
staleness 0), and so does a resumed run's first step: batches in flight are not part of a checkpoint;
they are discarded and their prompts sampled again by the restored policy."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from turbo.generators.async_rollouts import AsyncEngine


class Lookahead:
    """The Trainer's batches with up to `depth` more read ahead from the same epoch iterator."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.iterator: Iterator | None = None
        self.ahead: deque = deque()

    def take(self, iterator: Iterator, count: int) -> list[Any]:
        """The next `count` batches (fewer at the epoch's end); `depth` more are then read ahead."""
        if iterator is not self.iterator:  # a new epoch (or a resumed run): nothing read ahead yet
            self.iterator, self.ahead = iterator, deque()
        while len(self.ahead) < count + self.depth:
            try:
                self.ahead.append(next(iterator))
            except StopIteration:
                break
        return [self.ahead.popleft() for _ in range(min(count, len(self.ahead)))]

    def upcoming(self) -> list[Any]:
        return list(self.ahead)


def ahead_batches(trainer: Any, iterator: Iterator, count: int) -> list[Any] | None:
    """Trainer.get_batch_samples with rollout_settings.async: this step's batches, the next ones read
    ahead; None without async (the Trainer's own)."""
    if not isinstance(trainer.engine, AsyncEngine):
        return None
    if getattr(trainer, "lookahead", None) is None:
        trainer.lookahead = Lookahead(trainer.engine.max_staleness)
    return trainer.lookahead.take(iterator, count)


def prefetch_ahead(trainer: Any, n: int) -> None:
    """Ask the server for the answers of the batches read ahead (step t+1, t+2, ...; none past
    max_steps), sampled with the adapter just synced; a batch already on the way is not asked again.
    Each is seeded as its own step will be (seed + step)."""
    engine = trainer.engine
    lookahead = getattr(trainer, "lookahead", None)
    if not isinstance(engine, AsyncEngine) or lookahead is None:
        return
    step = trainer.state.global_step
    for offset, batch in enumerate(lookahead.upcoming(), start=1):
        if step + offset >= trainer.state.max_steps:
            break
        prompts = [feature["prompt_ids"] for feature in batch["prompts"]]
        engine.prefetch(prompts, n, trainer.seed + step + offset)


def overlap_metrics(engine: Any) -> dict[str, float]:
    """rollout/staleness (optimisation steps between the sampler's policy and the trained one) and
    rollout/wait_seconds (the trainer's wait for its answers) of the step's rollout; {} without async."""
    if not isinstance(engine, AsyncEngine):
        return {}
    return {"rollout/staleness": float(engine.staleness), "rollout/wait_seconds": engine.wait_seconds}
