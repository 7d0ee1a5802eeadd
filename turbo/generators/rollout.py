"""The interface every rollout engine of online RL (train_ppo, train_grpo) has: token ids in, sampled token
ids and the sampler's log-probs out, new weights taken in place. The engines: rollout_transformers.py
(`generate` on the training model), rollout_vllm.py (a colocated vLLM engine), vllm_server.py (a separate
vLLM server); engines.py names them. Sampling arguments come from RolloutSettings.sampling."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Segment:
    """A run of answer tokens [start, end): the policy's (sampled, trained) or a tool result's (tokenised
    once and appended, never trained). `error`: the tool call failed (its error is the result text)."""

    role: str  # "policy" | "tool"
    start: int
    end: int
    tool: str | None = None
    error: bool = False


@dataclass(frozen=True)
class Sample:
    """One sampled answer. `logps` are the sampler's own log-probs of `answer_ids` (one per token, under
    its raw logits; 0 for tool tokens); `finished`: the answer ended with EOS (kept in `answer_ids`), else
    it was cut at max_new_tokens or by a limit of the tool loop (truncated). `segments`: a trajectory with
    tool calls as its policy and tool runs in order (empty: the whole answer is the policy's)."""

    prompt_ids: list[int]
    answer_ids: list[int]
    logps: list[float]
    finished: bool
    segments: tuple[Segment, ...] = ()

    @property
    def policy_mask(self) -> list[bool]:
        """Per answer token: sampled by the policy (trained) or not (a tool result)."""
        if not self.segments:
            return [True] * len(self.answer_ids)
        mask = [False] * len(self.answer_ids)
        for segment in self.segments:
            if segment.role == "policy":
                mask[segment.start : segment.end] = [True] * (segment.end - segment.start)
        return mask

    @property
    def final_start(self) -> int:
        """Where the final answer starts: after the last tool result (0 without tools)."""
        tools = [segment.end for segment in self.segments if segment.role == "tool"]
        return tools[-1] if tools else 0


def segment_rows(sample: Sample, tokenizer: Any) -> list[dict[str, Any]]:
    """The trajectory as the dumps and rewards read it: per segment its role, text, tool (tool results),
    whether it is trained (the policy's tokens) and, for a failed call, error: true."""
    segments = sample.segments or (Segment("policy", 0, len(sample.answer_ids)),)
    rows = []
    for segment in segments:
        row: dict[str, Any] = {
            "role": segment.role,
            "text": tokenizer.decode(
                sample.answer_ids[segment.start : segment.end], skip_special_tokens=True
            ),
        }
        if segment.tool is not None:
            row["tool"] = segment.tool
        row["trained"] = segment.role == "policy"
        if segment.error:
            row["error"] = True
        rows.append(row)
    return rows


class RolloutEngine(Protocol):
    """What the trainers call. `sample` returns n answers per prompt, prompt-major (the n answers of prompt
    0 first); greedy decodes with temperature None (then n is 1); `media` (per prompt, its (modality,
    tensor) items) only for transformers rollouts of a multimodal policy; `stop`: strings after which an
    answer stops (the tool loop's closing tags; tokens after one are the caller's to drop). `sync` loads
    the policy's current weights; `close` releases what the engine holds."""

    tokenizer: Any

    def sync(self, model: Any) -> None: ...

    def sample(
        self,
        model: Any,
        prompts: list[list[int]],
        n: int,
        greedy: bool,
        seed: int,
        media: list[list[tuple[str, Any]]] | None = None,
        stop: list[str] | None = None,
    ) -> list[Sample]: ...

    def close(self) -> None: ...


def samples(
    prompts: list[list[int]], n: int, answers: list[list[int]], logps: list[list[float]], eos: int | None
) -> list[Sample]:
    """Prompt-major answers and their log-probs as Samples (finished: the last token is EOS)."""
    rows = [prompt for prompt in prompts for _ in range(n)]
    return [
        Sample(list(prompt), ids, values, bool(ids) and ids[-1] == eos)
        for prompt, ids, values in zip(rows, answers, logps, strict=True)
    ]


def no_media(media: list | None, engine: str) -> None:
    if media is not None:
        raise ValueError(f"{engine} rollouts take text prompts only; multimodal prompts need transformers")


def sync_engine(engine: Any, model: Any, step: int) -> float:
    """Bring the engine to the policy of optimisation step `step` (once per step); the seconds it took.
    An engine without `synced_step` (transformers: the training model itself) is always in step."""
    if getattr(engine, "synced_step", step) == step:
        return 0.0
    start = time.perf_counter()
    engine.sync(model)
    engine.synced_step = step
    return time.perf_counter() - start
