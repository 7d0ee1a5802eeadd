"""Callbacks that write to the experiment folder: per-step metrics and cherry-pick answers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from turbo.generators.transformers import answer_rows, generate_answers
from turbo.io import write_jsonl
from turbo.settings.cherry_pick import ChatCherryPickSettings


class MetricsLogCallback(TrainerCallback):
    """Appends every log (loss, lr, ...) with tokens/s to metrics.jsonl, one line per log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: tuple[float, int] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last = (time.perf_counter(), state.num_input_tokens_seen)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        row: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch, **logs}
        now, tokens = time.perf_counter(), state.num_input_tokens_seen
        if self._last is not None and now > self._last[0] and tokens > self._last[1]:
            row["tokens_per_second"] = (tokens - self._last[1]) / (now - self._last[0])
        self._last = (now, tokens)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


class ChatCherryPickCallback(TrainerCallback):
    """At each evaluation, answers the cherry-pick prompts and writes cherry_picks/step_N.jsonl."""

    def __init__(self, settings: ChatCherryPickSettings, samples: list, tokenizer: Any, folder: Path) -> None:
        self.settings = settings
        self.samples = samples
        self.tokenizer = tokenizer
        self.folder = folder

    def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None or not state.is_world_process_zero:
            return
        answers = generate_answers(
            model,
            self.tokenizer,
            [sample.input_ids for sample in self.samples],
            self.settings.generator_transformers_settings,
            self.settings.custom_generation_settings,
            batch=args.per_device_eval_batch_size,
        )
        write_jsonl(self.folder / f"step_{state.global_step}.jsonl", answer_rows(self.samples, answers))
