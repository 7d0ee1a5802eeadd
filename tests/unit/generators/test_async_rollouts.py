"""Rollouts that overlap training, without a server: the bookkeeping of batches sampled ahead (futures keyed
by what they sample, with the policy version that samples them), the engine in front of a stand-in
sampler, the adapters a vLLM server engine keeps loaded for them, and the trainer's read-ahead."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import turbo.generators.vllm_server as vllm_server
from turbo.generators.async_rollouts import AsyncEngine, StaleQueue, batch_key
from turbo.generators.rollout import sync_engine
from turbo.generators.vllm_server import VllmServerEngine
from turbo.settings.rollout import RolloutSettings
from turbo.trainers.rollout_async import Lookahead, ahead_batches, overlap_metrics, prefetch_ahead


def done(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def test_a_batch_is_taken_with_its_staleness() -> None:
    queue = StaleQueue(max_staleness=1)
    assert queue.submit("b1", 0, lambda: done("answers of b1"))
    assert not queue.submit("b1", 1, lambda: done("again"))  # already on the way: not asked twice
    taken = queue.take("b1", 1)
    assert (taken.result, taken.staleness) == ("answers of b1", 1)
    assert queue.take("b1", 1) is None  # taken once
    assert queue.take("never asked", 1) is None


def test_a_batch_older_than_max_staleness_is_dropped() -> None:
    queue = StaleQueue(max_staleness=2)
    queue.submit("b", 3, lambda: done("answers"))
    assert queue.take("b", 6) is None  # 3 versions behind
    assert queue.dropped == 1 and queue.pending == {}
    queue.submit("c", 3, lambda: done("answers"))
    assert queue.take("c", 5).staleness == 2


def test_the_wait_is_the_time_blocked_on_the_batch() -> None:
    queue = StaleQueue(max_staleness=1)
    future: Future = Future()
    queue.submit("b", 0, lambda: future)
    threading.Timer(0.2, future.set_result, ("late",)).start()
    taken = queue.take("b", 1)
    assert taken.result == "late" and taken.wait_seconds >= 0.15
    assert queue.take("b", 1) is None
    queue.submit("ready", 0, lambda: done("now"))
    assert queue.take("ready", 0).wait_seconds < 0.1


def test_a_failed_sampling_raises_when_taken_and_discard_forgets_the_rest() -> None:
    queue = StaleQueue(max_staleness=1)
    failed: Future = Future()
    failed.set_exception(RuntimeError("server gone"))
    queue.submit("bad", 0, lambda: failed)
    with pytest.raises(RuntimeError, match="server gone"):
        queue.take("bad", 1)
    waiting: Future = Future()
    queue.submit("a", 0, lambda: waiting)
    queue.submit("b", 0, lambda: done(1))
    assert queue.discard() == 2 and queue.pending == {} and waiting.cancelled()


class Sampler:
    """What AsyncEngine needs of a VllmServerEngine: the loaded adapter's name, sync, sample_with."""

    def __init__(self) -> None:
        self.tokenizer = None
        self.version = 0
        self.calls: list[tuple[str, int]] = []  # (adapter, seed) per sampled batch
        self.closed = False

    @property
    def loaded(self) -> str:
        return f"adapter-{self.version}"

    def sync(self, model: Any) -> None:
        self.version += 1

    def sample_with(self, adapter: str, prompts: list, n: int, greedy: bool, seed: int, stop: Any = None):
        self.calls.append((adapter, seed))
        return [(adapter, seed)] * (len(prompts) * n)

    def sample(self, model: Any, prompts: list, n: int, greedy: bool, seed: int, media=None, stop=None):
        return self.sample_with(self.loaded, prompts, n, greedy, seed, stop)


def test_the_next_batch_is_sampled_with_the_adapter_of_the_step_before() -> None:
    sampler = Sampler()
    prompts = {step: [[step, 7]] for step in range(4)}
    with AsyncEngine(sampler, max_staleness=1) as engine:
        for step in range(4):
            sync_engine(engine, None, step)  # the policy after `step` updates is adapter-<step + 1>
            if step + 1 < 4:
                engine.prefetch(prompts[step + 1], 2, seed=step + 1)
            answers = engine.sample(None, prompts[step], 2, greedy=False, seed=step)
            expected = "adapter-1" if step == 0 else f"adapter-{step}"  # step 0 samples its own
            assert answers == [(expected, step)] * 2
            assert overlap_metrics(engine)["rollout/staleness"] == (0 if step == 0 else 1)
        greedy = engine.sample(None, prompts[0], 1, greedy=True, seed=0)
        assert greedy == [("adapter-4", 0)]  # evaluation: the current policy, never a batch ahead
        assert engine.staleness == 0
    assert engine.queue.pending == {}


def test_another_batch_than_the_one_asked_ahead_is_sampled_now() -> None:
    sampler = Sampler()
    with AsyncEngine(sampler, max_staleness=1) as engine:
        sync_engine(engine, None, 0)
        engine.prefetch([[1, 2]], 2, seed=5)
        assert engine.sample(None, [[1, 2]], 2, greedy=False, seed=6) == [("adapter-1", 6)] * 2
        assert batch_key([[1, 2]], 2, 5) in engine.queue.pending  # still waiting for its own step
    assert overlap_metrics(sampler) == {}  # no overlap, no metrics


class Adapter:
    def save_pretrained(self, path: str) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "adapter_config.json").write_text("{}")


def test_the_server_engine_keeps_the_adapters_in_flight_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(vllm_server, "load_adapter", lambda url, name, *rest: calls.append(("load", name)))
    monkeypatch.setattr(
        vllm_server, "unload_adapter", lambda url, name, *rest: calls.append(("unload", name))
    )
    settings = RolloutSettings(vllm_server={"url": "http://127.0.0.1:1"})
    engine = VllmServerEngine(SimpleNamespace(eos_token_id=2), settings, tmp_path, str(tmp_path), retain=1)
    for _ in range(3):
        engine.sync(Adapter())
    first, second, third = (f"{engine.prefix}-{k}" for k in (1, 2, 3))
    assert calls == [("load", first), ("load", second), ("load", third), ("unload", first)]
    assert engine.adapters == [second, third] and engine.loaded == third
    assert sorted(path.name for path in tmp_path.iterdir()) == [second, third]
    engine.close()
    assert calls[-2:] == [("unload", second), ("unload", third)]
    assert [path.name for path in tmp_path.iterdir()] == [third]  # the last rollout's policy stays


def test_the_batches_are_read_ahead_within_an_epoch() -> None:
    lookahead = Lookahead(depth=2)
    epoch = iter(range(5))
    assert lookahead.take(epoch, 1) == [0] and lookahead.upcoming() == [1, 2]
    assert lookahead.take(epoch, 1) == [1] and lookahead.upcoming() == [2, 3]
    assert [lookahead.take(epoch, 1) for _ in range(3)] == [[2], [3], [4]]
    assert lookahead.take(epoch, 1) == [] and lookahead.upcoming() == []
    assert lookahead.take(iter("ab"), 1) == ["a"] and lookahead.upcoming() == ["b"]  # a new epoch


def test_the_trainer_asks_the_next_steps_up_to_max_steps() -> None:
    sampler = Sampler()
    with AsyncEngine(sampler, max_staleness=2) as engine:
        trainer = SimpleNamespace(engine=engine, seed=100, state=SimpleNamespace(global_step=0, max_steps=2))
        batches = [{"prompts": [{"prompt_ids": [step]}]} for step in range(4)]
        assert ahead_batches(trainer, iter(batches), 1) == [batches[0]]
        sync_engine(engine, None, 0)
        prefetch_ahead(trainer, n=3)
        assert list(engine.queue.pending) == [batch_key([[1]], 3, 101)]  # step 2 is past max_steps
    plain = SimpleNamespace(engine=sampler)
    assert ahead_batches(plain, iter(batches), 1) is None  # without async: the Trainer's own
