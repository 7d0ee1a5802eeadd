"""inference_chat with tool_settings: every record answered by the tool loop of online RL (the model may
call the tools inside its answer; each result is appended and generation resumes), with transformers or
vLLM per entry. Each answer's `content` is its final answer (the text after the last tool result) and its
`segments` the whole trajectory: {"role": "policy" | "tool", "text", "tool"?, "trained", "error"?}."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

from turbo.data.chat import ChatSample
from turbo.generators.tools.inference import trajectory_answers, transformers_sampler, vllm_sampler
from turbo.generators.tools.loop import with_tools
from turbo.generators.transformers import answer_rows
from turbo.settings.pipelines.inference.chat import (
    ChatInferenceExperimentSettings,
    ChatInferenceModelSettings,
)
from turbo.settings.vllm import vllm_sampling

Rows = list[dict[str, Any]]


def tool_rows(
    settings: ChatInferenceExperimentSettings,
    entry: ChatInferenceModelSettings,
    tokenizer: Any,
    samples: list[ChatSample],
) -> Iterator[Rows]:
    """The output rows of each generation setting of the entry, answered with the tools."""
    prompts = [sample.input_ids for sample in samples]
    if entry.use_vllm:
        from turbo.generators.vllm import lora_request, vllm_engine

        opened: Any = vllm_engine(entry, tokenizer, settings.seed)
    else:
        from turbo.modeling.loading import load_model

        opened = nullcontext(load_model(entry.model_settings, tokenizer, entry.tokenizer_settings))
    with opened as model:
        for generation in entry.generation_settings:
            sampling = vllm_sampling(generation)
            if entry.use_vllm:
                sampler = vllm_sampler(model, tokenizer, sampling, lora_request(entry))
            else:
                sampler = transformers_sampler(model, tokenizer, sampling, entry.generate_batch)
            loop = with_tools(
                nullcontext(sampler), settings.tool_settings, settings.tool_loop_settings, tokenizer
            )
            with loop as engine:
                sampled = engine.sample(model, prompts, sampling.n, sampling.temperature == 0, settings.seed)
            answers, extras = trajectory_answers(sampled, sampling.n, tokenizer)
            yield answer_rows(samples, answers, extras)
