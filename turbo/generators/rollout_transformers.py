"""Rollouts with transformers `generate` on the training model itself (always up to date)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from turbo.generators.rollout import Sample, samples


class TransformersEngine:
    """Samples with `generate` on the model it is given: the policy as it trains, so `sync` has nothing to
    do. The only engine that takes multimodal prompts (`media`)."""

    def __init__(self, tokenizer: Any, settings: Any) -> None:
        self.tokenizer = tokenizer
        self.settings = settings  # RolloutSettings

    def sync(self, model: Any) -> None:
        """Nothing to do: the engine is the training model."""

    def close(self) -> None:
        """Nothing to release."""

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
        from turbo.generators.transformers import sample_answer_ids

        answers, logps = sample_answer_ids(
            model,
            self.tokenizer,
            prompts,
            n=n,
            **self.settings.sampling(greedy),
            batch=self.settings.generation_batch,
            media=media,
            stop=stop,
        )
        return samples(prompts, n, answers, logps, self.tokenizer.eos_token_id)


@contextmanager
def open_transformers_engine(settings: Any, tokenizer: Any) -> Iterator[TransformersEngine]:
    """The engine of an RL experiment's rollout_settings."""
    yield TransformersEngine(tokenizer, settings.rollout_settings)
