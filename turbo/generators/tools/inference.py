"""The tool loop for inference_chat: each generation setting of an entry as a one-turn sampler (transformers
`generate` or vLLM, on token ids) that the loop of turbo.generators.tools.loop drives, as the rollout
engines of online RL. With tools, a generation setting is read as vLLM sampling (settings/vllm.py
vllm_sampling): answers per prompt, max new tokens per turn, temperature (0: greedy), top_p, top_k."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from turbo.generators.rollout import Sample, no_media, samples

SampleIds = Callable[[list[list[int]], int, int, list[str] | None], tuple[list[list[int]], list[list[float]]]]


@dataclass
class TurnSampler:
    """A rollout engine's `sample` over a function (prompts, n, seed, stop) -> answer ids and log-probs."""

    tokenizer: Any
    sample_ids: SampleIds

    def sync(self, model: Any) -> None:
        """Inference: the weights do not change."""

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
        no_media(media, "inference with tools")
        answers, logps = self.sample_ids(prompts, n, seed, stop)
        return samples(prompts, n, answers, logps, self.tokenizer.eos_token_id)


def transformers_sampler(model: Any, tokenizer: Any, sampling: Any, batch: int) -> TurnSampler:
    from turbo.generators.transformers import sample_answer_ids

    def sample_ids(
        prompts: list[list[int]], n: int, seed: int, stop: list[str] | None
    ) -> tuple[list[list[int]], list[list[float]]]:
        return sample_answer_ids(
            model,
            tokenizer,
            prompts,
            n=n,
            max_new_tokens=sampling.max_tokens,
            temperature=sampling.temperature or None,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            batch=batch,
            stop=stop,
        )

    return TurnSampler(tokenizer, sample_ids)


def vllm_sampler(llm: Any, tokenizer: Any, sampling: Any, lora: Any) -> TurnSampler:
    from turbo.generators.vllm import sample_answer_ids_vllm

    def sample_ids(
        prompts: list[list[int]], n: int, seed: int, stop: list[str] | None
    ) -> tuple[list[list[int]], list[list[float]]]:
        return sample_answer_ids_vllm(
            llm,
            prompts,
            n=n,
            max_new_tokens=sampling.max_tokens,
            temperature=sampling.temperature or None,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            eos_token_id=tokenizer.eos_token_id,
            seed=sampling.seed if sampling.seed is not None else seed,
            lora=lora,
            stop=stop,
        )

    return TurnSampler(tokenizer, sample_ids)


def trajectory_answers(
    sampled: list[Sample], n: int, tokenizer: Any
) -> tuple[list[list[str]], list[list[dict]]]:
    """Per prompt, its n final answers (the text after the last tool result) and, per answer, its segments."""
    from turbo.generators.rollout import segment_rows

    texts = [tokenizer.decode(s.answer_ids[s.final_start :], skip_special_tokens=True) for s in sampled]
    extras = [{"segments": segment_rows(s, tokenizer)} for s in sampled]
    return (
        [texts[i : i + n] for i in range(0, len(texts), n)],
        [extras[i : i + n] for i in range(0, len(extras), n)],
    )
