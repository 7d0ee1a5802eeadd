"""Rollouts with a vLLM engine colocated in the training process, started on the policy's base model; after
every optimisation step the policy's weights (LoRA merged in, out of place) are loaded into it in place,
without a restart (generators/vllm.py policy_weights and load_policy_weights)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from turbo.generators.rollout import Sample, no_media, samples


class VllmEngine:
    """Samples with a running vLLM `LLM`; `sync` loads the policy's current weights into it."""

    def __init__(self, llm: Any, tokenizer: Any, settings: Any) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.settings = settings  # RolloutSettings
        self.synced_step: int | None = None

    def sync(self, model: Any) -> None:
        from turbo.generators.vllm import load_policy_weights, policy_weights

        load_policy_weights(self.llm, policy_weights(getattr(model, "module", model)))

    def close(self) -> None:
        """Nothing to release here: the engine is shut down by whoever started it (open_vllm_engine)."""

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
        from turbo.generators.vllm import sample_answer_ids_vllm

        no_media(media, "vLLM")
        answers, logps = sample_answer_ids_vllm(
            self.llm,
            prompts,
            n=n,
            **self.settings.sampling(greedy),
            eos_token_id=self.tokenizer.eos_token_id,
            seed=seed,
            stop=stop,
        )
        return samples(prompts, n, answers, logps, self.tokenizer.eos_token_id)


@contextmanager
def open_vllm_engine(settings: Any, tokenizer: Any) -> Iterator[VllmEngine]:
    """A colocated engine on the RL experiment's base model (in this process, so that new weights pass by
    reference; rollout_settings.vllm_engine_settings); shut down on exit."""
    from turbo.generators.vllm import vllm_engine
    from turbo.settings.pipelines.inference.chat import ChatInferenceModelSettings

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    base = settings.model_settings.model_copy(
        update={"peft_settings": None, "adapter_path": None, "is_trainable": False}
    )
    entry = ChatInferenceModelSettings(
        model_settings=base,
        tokenizer_settings=settings.tokenizer_settings,
        use_vllm=True,
        vllm_engine_settings=settings.rollout_settings.vllm_engine_settings,
    )
    with vllm_engine(entry, tokenizer, settings.seed) as llm:
        yield VllmEngine(llm, tokenizer, settings.rollout_settings)
