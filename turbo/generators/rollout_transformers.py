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

        if self.settings.generation_batch == 1 and not greedy:
            return [
                sample
                for index, prompt in enumerate(prompts)
                for sample in self.sample_seeded(
                    model, prompt, n, seed, None if media is None else media[index], stop
                )
            ]
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

    def sample_seeded(
        self,
        model: Any,
        prompt: list[int],
        n: int,
        seed: int,
        media: list[tuple[str, Any]] | None,
        stop: list[str] | None,
    ) -> list[Sample]:
        """The n answers of one prompt drawn from a generator seeded by (seed, the prompt's tokens) alone,
        the process's random state left as it was: the same answers whichever rank samples the prompt and
        whatever else is in its batch (generation_batch 1), so one process and N ranks sample alike."""
        import torch

        from turbo.generators.transformers import sample_answer_ids

        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(prompt_seed(seed, prompt))
            answers, logps = sample_answer_ids(
                model,
                self.tokenizer,
                [prompt],
                n=n,
                **self.settings.sampling(False),
                batch=1,
                media=None if media is None else [media],
                stop=stop,
            )
        return samples([prompt], n, answers, logps, self.tokenizer.eos_token_id)


def prompt_seed(seed: int, prompt: list[int]) -> int:
    """A seed from the step's seed and the prompt's token ids (stable across processes and runs)."""
    import zlib

    return zlib.crc32(",".join(map(str, prompt)).encode(), seed & 0xFFFFFFFF)


@contextmanager
def open_transformers_engine(settings: Any, tokenizer: Any) -> Iterator[TransformersEngine]:
    """The engine of an RL experiment's rollout_settings."""
    yield TransformersEngine(tokenizer, settings.rollout_settings)
