"""Rollouts that overlap training (rollout_settings.async, vLLM server engine): while the trainer trains
step t, the server already samples the answers of steps t+1 .. t+max_staleness with the adapter it has
(the policy of step t), from a background thread that issues the HTTP completions requests (the server
is another process, so the trainer keeps its cores). Step t+1 then takes its answers when they are ready:
sampled by a policy `staleness` optimisation steps older than the one that trains them (at most
max_staleness; the rollout correction weights them by pi_train / pi_sampler).

StaleQueue is the bookkeeping alone (futures keyed by what they sample, each with the policy version
that samples it); AsyncEngine puts it in front of a VllmServerEngine behind the RolloutEngine interface.
A batch in flight lives in memory only: a resumed run samples its first step afresh (staleness 0)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from turbo.generators.rollout import Sample


@dataclass(frozen=True)
class Pending:
    version: int  # the policy version (optimisation steps taken) whose weights sample
    future: Future


@dataclass(frozen=True)
class Taken:
    result: Any
    staleness: int  # the policy's version now minus the sampler's
    wait_seconds: float  # how long the taker waited for the result


class StaleQueue:
    """Batches sampled ahead, keyed by what they sample, each with the policy version that samples it.
    `take` hands a batch over with its staleness and the seconds it waited for it; a batch more than
    `max_staleness` versions old by then is dropped (never trained)."""

    def __init__(self, max_staleness: int) -> None:
        self.max_staleness = max_staleness
        self.pending: dict[Hashable, Pending] = {}
        self.dropped = 0

    def submit(self, key: Hashable, version: int, start: Callable[[], Future]) -> bool:
        """Start sampling `key` with the policy of `version` (`start` returns its future) unless it is
        already on the way; whether it was started."""
        if key in self.pending:
            return False
        self.pending[key] = Pending(version, start())
        return True

    def take(self, key: Hashable, version: int) -> Taken | None:
        """The batch sampled for `key`, waited for (its future's exception raised here); None when it
        was never submitted or is more than max_staleness versions behind `version` (then dropped)."""
        pending = self.pending.pop(key, None)
        if pending is None:
            return None
        staleness = version - pending.version
        if staleness > self.max_staleness:
            pending.future.cancel()
            self.dropped += 1
            return None
        start = time.perf_counter()
        result = pending.future.result()
        return Taken(result, staleness, time.perf_counter() - start)

    def discard(self) -> int:
        """Forget every batch in flight (cancelled where not started yet); how many there were."""
        count = len(self.pending)
        for pending in self.pending.values():
            pending.future.cancel()
        self.pending.clear()
        return count


def batch_key(prompts: list[list[int]], n: int, seed: int) -> tuple:
    return (tuple(tuple(ids) for ids in prompts), n, seed)


class AsyncEngine:
    """A vLLM server engine (`engine`: VllmServerEngine, which keeps max_staleness older adapters loaded)
    that samples ahead: `prefetch` starts sampling a batch with the adapter of the policy's current
    version (`synced_step`, set by sync_engine); `sample` of the same prompts, n and seed takes that batch
    (staleness and wait_seconds recorded), anything else (greedy evaluation, an unknown batch) is sampled
    now with the current adapter (staleness 0, wait_seconds its sampling time)."""

    def __init__(self, engine: Any, max_staleness: int) -> None:
        self.engine = engine
        self.max_staleness = max_staleness
        self.queue = StaleQueue(max_staleness)
        self.executor = ThreadPoolExecutor(max_workers=max_staleness, thread_name_prefix="turbo-rollouts")
        self.synced_step: int | None = None
        self.staleness = 0  # of the last batch `sample` returned
        self.wait_seconds = 0.0

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    def sync(self, model: Any) -> None:
        self.engine.sync(model)

    def prefetch(self, prompts: list[list[int]], n: int, seed: int) -> bool:
        """Start sampling n answers to each prompt with the current adapter, in the background; False when
        that batch is already on the way."""
        adapter = self.engine.loaded or ""
        version = self.synced_step or 0

        def start() -> Future:
            return self.executor.submit(self.engine.sample_with, adapter, prompts, n, False, seed)

        return self.queue.submit(batch_key(prompts, n, seed), version, start)

    def sample(
        self,
        model: Any,
        prompts: list[list[int]],
        n: int,
        greedy: bool,
        seed: int,
        media: list[list[tuple[str, Any]]] | None = None,
        stop: list[str] | None = None,
    ) -> list[Sample]:
        taken = None
        if not greedy and media is None and stop is None:
            taken = self.queue.take(batch_key(prompts, n, seed), self.synced_step or 0)
        if taken is not None:
            self.staleness, self.wait_seconds = taken.staleness, taken.wait_seconds
            return taken.result
        start = time.perf_counter()
        answers = self.engine.sample(model, prompts, n, greedy, seed, media=media, stop=stop)
        self.staleness, self.wait_seconds = 0, time.perf_counter() - start
        return answers

    def close(self) -> None:
        """Drop the batches in flight (those not started are cancelled; a request already sent is let
        finish, as the server's adapters are unloaded only after this)."""
        self.queue.discard()
        self.executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> AsyncEngine:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
