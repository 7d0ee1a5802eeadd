"""Multi-turn trajectories over any rollout engine (transformers, colocated vLLM, vLLM server), token in,
token out: each turn the engine samples from the trajectory's token ids and stops at a closing tag of a
call (`stop`); the policy's tokens are kept exactly as sampled up to the token that closes the call (any
token after it, padding or a token sampled past the stop, is dropped); the calls of all trajectories of
the turn run together (one faiss search per retriever), each result is tokenised once and appended;
generation resumes on the trajectories that called a tool. Limits: max_turns, max_tool_calls,
max_total_tokens (tool_loop_settings)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from turbo.generators.rollout import RolloutEngine, Sample, Segment
from turbo.generators.tools.base import Tool, ToolResult, error_result
from turbo.generators.tools.formats import Call, call_format


@dataclass
class Trajectory:
    prompt: list[int]
    media: Any = None
    ids: list[int] = field(default_factory=list)
    logps: list[float] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    turns: int = 0
    calls: int = 0
    finished: bool = False

    def add(
        self, role: str, ids: list[int], logps: list[float], tool: str | None = None, error: bool = False
    ) -> None:
        if not ids:
            return
        start = len(self.ids)
        self.ids += ids
        self.logps += logps
        self.segments.append(Segment(role, start, len(self.ids), tool, error))

    def cut(self, limit: int) -> bool:
        """Keep the first `limit` answer tokens; whether anything was cut."""
        if len(self.ids) <= limit:
            return False
        self.ids, self.logps = self.ids[:limit], self.logps[:limit]
        self.segments = [
            Segment(s.role, s.start, min(s.end, limit), s.tool, s.error)
            for s in self.segments
            if s.start < limit
        ]
        return True

    def sample(self) -> Sample:
        return Sample(self.prompt, self.ids, self.logps, self.finished, tuple(self.segments))


def first_call(tokenizer: Any, ids: list[int], format: Any) -> tuple[int, Call] | None:
    """The shortest prefix of `ids` whose text closes a call (binary search over decoded prefixes), and
    the call; None when the turn closes none."""

    def text(k: int) -> str:
        return tokenizer.decode(ids[:k], skip_special_tokens=True)

    if not format.closes(text(len(ids))):
        return None
    low, high = 1, len(ids)
    while low < high:
        middle = (low + high) // 2
        if format.closes(text(middle)):
            high = middle
        else:
            low = middle + 1
    return low, format.call(text(low))


def run_calls(tools: dict[str, Tool], calls: list[Call]) -> list[ToolResult]:
    """Every call of a turn: grouped by tool, one `run` per tool; a malformed call answered with its
    problem; a tool that raises answers each of its calls with the error."""
    results: list[ToolResult | None] = [None] * len(calls)
    by_tool: dict[str, list[int]] = {}
    for index, call in enumerate(calls):
        if call.problem is not None or call.name not in tools:
            results[index] = error_result(call.name, call.problem or "no such tool")
        else:
            by_tool.setdefault(call.name, []).append(index)
    for name, indices in by_tool.items():
        try:
            answers = tools[name].run([calls[i].argument for i in indices])
        except Exception as exc:  # noqa: BLE001 - a tool never stops the run
            answers = [error_result(name, f"{type(exc).__name__}: {exc}") for _ in indices]
        for index, answer in zip(indices, answers, strict=True):
            results[index] = answer
    return [result for result in results if result is not None]


class ToolEngine:
    """A rollout engine whose samples are multi-turn trajectories with tool calls (Sample.segments); the
    same interface as the engine it wraps. `tool_seconds`: time spent in tool calls so far."""

    def __init__(self, engine: RolloutEngine, tools: dict[str, Tool], loop: Any) -> None:
        self.engine = engine
        self.tools = tools
        self.loop = loop  # ToolLoopSettings
        self.format = call_format(loop.tool_call_format, list(tools), engine.tokenizer)
        self.tool_seconds = 0.0

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    @property
    def synced_step(self) -> int | None:
        return self.engine.synced_step  # type: ignore[attr-defined]  # AttributeError: always in step

    @synced_step.setter
    def synced_step(self, step: int) -> None:
        self.engine.synced_step = step  # type: ignore[attr-defined]

    def sync(self, model: Any) -> None:
        self.engine.sync(model)

    def close(self) -> None:
        self.engine.close()

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
        loop = self.loop
        rows = [
            Trajectory(list(prompt), None if media is None else media[i])
            for i, prompt in enumerate(prompts)
            for _ in range(n)
        ]
        stop = list(self.format.stops)
        sampled = self.engine.sample(model, prompts, n, greedy, seed, media=media, stop=stop)
        active = list(range(len(rows)))
        turn = 0
        while True:
            calling: list[int] = []
            calls: list[Call] = []
            for row, sample in zip(active, sampled, strict=True):
                trajectory = rows[row]
                trajectory.turns += 1
                found = first_call(self.tokenizer, sample.answer_ids, self.format)
                if found is None:
                    trajectory.add("policy", sample.answer_ids, sample.logps)
                    cut = trajectory.cut(loop.max_total_tokens)
                    trajectory.finished = sample.finished and not cut
                    continue
                end, call = found
                trajectory.add("policy", sample.answer_ids[:end], sample.logps[:end])
                over = trajectory.calls >= loop.max_tool_calls or trajectory.turns >= loop.max_turns
                if trajectory.cut(loop.max_total_tokens) or over:
                    continue  # stopped by a limit: unfinished
                trajectory.calls += 1
                calling.append(row)
                calls.append(call)
            start = time.perf_counter()
            results = run_calls(self.tools, calls)
            self.tool_seconds += time.perf_counter() - start
            active = []
            for row, call, result in zip(calling, calls, results, strict=True):
                trajectory = rows[row]
                ids = self.format.result_ids(self.tokenizer, result.text)
                trajectory.add("tool", ids, [0.0] * len(ids), call.name, result.error)
                if not trajectory.cut(loop.max_total_tokens - 1):  # room for one policy token at least
                    active.append(row)
            if not active:
                return [trajectory.sample() for trajectory in rows]
            turn += 1
            sampled = self.engine.sample(
                model,
                [rows[row].prompt + rows[row].ids for row in active],
                1,
                greedy,
                seed + turn,
                media=None if media is None else [rows[row].media for row in active],
                stop=stop,
            )


@contextmanager
def with_tools(opened: Any, tool_settings: list[Any], loop: Any, tokenizer: Any) -> Iterator[Any]:
    """The engine opened by `opened` (a context manager), wrapped to call the tools of tool_settings
    (each opened from TOOLS, released on exit); the engine itself when there are none."""
    from turbo.generators.tools import TOOLS

    with ExitStack() as stack:
        engine = stack.enter_context(opened)
        if not tool_settings:
            yield engine
            return
        tools = {tool.name: stack.enter_context(TOOLS[tool.type](tool, tokenizer)) for tool in tool_settings}
        yield ToolEngine(engine, tools, loop)
